package dev.sampleloop.bench.streams;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.StreamJoined;

/**
 * predictions ⋈ feedback by requestId: a KStream-KStream inner join where a feedback fits a
 * prediction when tp - before <= tf <= tp + after, then labeling and privacy, samples to the
 * output topic keyed by requestId. The output record's timestamp is max(tp, tf) (Kafka Streams'
 * join result timestamp) and it carries the headers of the input that triggered the join.
 */
public final class JoinTopology {
  /** What the topology needs to know. */
  public record Settings(
      String predictionsTopic,
      String feedbackTopic,
      String samplesTopic,
      Duration before,
      Duration after,
      Duration grace) {}

  /** Counters read at shutdown (stream threads update them). */
  public static final class Counters {
    public final AtomicLong invalidFeedback = new AtomicLong();
    public final AtomicLong needsReview = new AtomicLong();
    public final AtomicLong samples = new AtomicLong();
  }

  private JoinTopology() {}

  public static Topology build(Settings settings, Privacy privacy, Counters counters) {
    Serde<String> keys = Serdes.String();
    Serde<Prediction> predictionSerde = JsonSerde.of(Prediction.class);
    Serde<Feedback> feedbackSerde = JsonSerde.of(Feedback.class);
    Serde<LabeledSample> sampleSerde = JsonSerde.of(LabeledSample.class);
    EventTimeExtractor eventTime = new EventTimeExtractor();

    StreamsBuilder builder = new StreamsBuilder();
    KStream<String, Prediction> predictions =
        builder.stream(settings.predictionsTopic(), Consumed.with(keys, predictionSerde).withTimestampExtractor(eventTime));
    KStream<String, Feedback> feedback = builder
        .stream(settings.feedbackTopic(), Consumed.with(keys, feedbackSerde).withTimestampExtractor(eventTime))
        .filter((key, f) -> {
          boolean valid = f != null && f.isValid();
          if (!valid) counters.invalidFeedback.incrementAndGet();
          return valid;
        });

    JoinWindows windows = JoinWindows.ofTimeDifferenceAndGrace(settings.after(), settings.grace())
        .before(settings.before());

    predictions
        .join(
            feedback,
            (p, f) -> toSample(p, f, privacy, counters),
            windows,
            StreamJoined.with(keys, predictionSerde, feedbackSerde)
                .withName("prediction-feedback-join")
                .withStoreName("prediction-feedback-join"))
        .filter((key, sample) -> sample != null)
        .to(settings.samplesTopic(), Produced.with(keys, sampleSerde));
    return builder.build();
  }

  private static LabeledSample toSample(Prediction p, Feedback f, Privacy privacy, Counters counters) {
    Labeling.Label label = Labeling.label(p, f);
    if (label == null) {
      counters.needsReview.incrementAndGet();
      return null;
    }
    LabeledSample s = new LabeledSample();
    s.requestId = p.requestId;
    s.category = p.category;
    s.features = p.features;
    s.attributes = privacy.protect(p.attributes);
    s.label = label.label();
    s.labelSource = label.source();
    s.predictedLabel = p.predictedLabel;
    s.modelVersion = p.modelVersion;
    s.requestTimestamp = p.requestTimestamp;
    s.feedbackTimestamp = f.timestamp;
    // Every match is a revision 0: the inner join keeps no per-request state across matches.
    s.revision = 0;
    s.origin = "online";
    counters.samples.incrementAndGet();
    return s;
  }
}
