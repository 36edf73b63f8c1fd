package dev.sampleloop.bench.streams;

import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import java.util.Map;

/** The joined output, with the field names of schemas/LabeledSample.avsc. */
@JsonPropertyOrder({
  "requestId", "category", "features", "attributes", "label", "labelSource", "predictedLabel",
  "modelVersion", "requestTimestamp", "feedbackTimestamp", "revision", "origin"
})
public final class LabeledSample {
  public String requestId;
  public String category;
  public Map<String, Double> features;
  public Map<String, String> attributes;
  public String label;
  public String labelSource;
  public String predictedLabel;
  public String modelVersion;
  public long requestTimestamp;
  public Long feedbackTimestamp;
  public int revision;
  public String origin;
}
