package dev.sampleloop.bench.streams;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import java.util.Map;

/** A prediction as JSON, with the field names of schemas/Prediction.avsc. */
@JsonIgnoreProperties(ignoreUnknown = true)
public final class Prediction implements EventTimed {
  public String requestId;
  public String category;
  public Map<String, Double> features;
  public Map<String, String> attributes;
  public String predictedLabel;
  public Map<String, Double> scores;
  public String modelVersion;
  public String modelHash;
  public long requestTimestamp;
  public long timestamp;

  @Override
  public long eventTime() {
    return timestamp;
  }
}
