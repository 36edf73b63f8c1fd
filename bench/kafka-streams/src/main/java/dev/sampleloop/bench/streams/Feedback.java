package dev.sampleloop.bench.streams;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;

/** Business feedback as JSON, with the field names of schemas/Feedback.avsc. */
@JsonIgnoreProperties(ignoreUnknown = true)
public final class Feedback implements EventTimed {
  public String requestId;
  public long timestamp;
  public String source;
  public String actualLabel;
  public Boolean correct;

  @Override
  public long eventTime() {
    return timestamp;
  }

  /** docs/join-semantics.md: feedback with neither a non-empty actualLabel nor correct is a dead letter. */
  public boolean isValid() {
    if (requestId == null || requestId.isEmpty()) return false;
    if (actualLabel != null) return !actualLabel.isEmpty();
    return correct != null;
  }
}
