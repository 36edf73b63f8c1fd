package dev.sampleloop.bench.streams;

import java.util.Map;

/**
 * The labeling table of docs/join-semantics.md. A category's classes are the keys of the
 * prediction's scores (sampleloop can also take them from configuration).
 */
public final class Labeling {
  public static final String CONFIRMED = "CONFIRMED";
  public static final String CORRECTED = "CORRECTED";

  /** A label and how it was obtained. */
  public record Label(String label, String source) {}

  private Labeling() {}

  /** The label for {@code f} applied to {@code p}, or null when the feedback needs review. */
  public static Label label(Prediction p, Feedback f) {
    if (f.actualLabel != null) {
      return f.actualLabel.equals(p.predictedLabel)
          ? new Label(p.predictedLabel, CONFIRMED)
          : new Label(f.actualLabel, CORRECTED);
    }
    if (Boolean.TRUE.equals(f.correct)) return new Label(p.predictedLabel, CONFIRMED);
    String other = otherOfTwo(p.scores, p.predictedLabel);
    return other == null ? null : new Label(other, CORRECTED);
  }

  private static String otherOfTwo(Map<String, Double> scores, String predicted) {
    if (scores == null || scores.size() != 2 || !scores.containsKey(predicted)) return null;
    for (String c : scores.keySet()) {
      if (!c.equals(predicted)) return c;
    }
    return null;
  }
}
