package dev.sampleloop.bench.streams;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.Base64;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.stream.Stream;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.LogAndContinueExceptionHandler;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

/**
 * Runs the join until SIGTERM/SIGINT. Prints machine-readable lines on stdout for the harness:
 * {@code sampleloop-kstreams state <STATE>} on every state change and
 * {@code sampleloop-kstreams stats {json}} after shutdown.
 *
 * <pre>
 * java -jar target/sampleloop-kafka-streams-join.jar --application-id ID
 *   [--bootstrap 127.0.0.1:19092] [--guarantee at_least_once|exactly_once_v2] [--commit-interval-ms 100]
 *   [--predictions-topic predictions] [--feedback-topic feedback] [--samples-topic samples]
 *   [--before-ms 60000] [--after-ms 86400000] [--grace-ms 3600000] [--threads 1] [--state-dir DIR]
 *   [--config streams.key=value ...]
 * </pre>
 */
public final class JoinApp {
  private static final String PREFIX = "sampleloop-kstreams";
  private static final List<String> OPTIONS = List.of(
      "bootstrap", "application-id", "guarantee", "commit-interval-ms", "predictions-topic", "feedback-topic",
      "samples-topic", "before-ms", "after-ms", "grace-ms", "threads", "state-dir");

  private JoinApp() {}

  public static void main(String[] argv) throws Exception {
    Args args;
    try {
      args = new Args(argv, OPTIONS);
    } catch (IllegalArgumentException e) {
      System.err.println(PREFIX + ": " + e.getMessage());
      System.exit(2);
      return;
    }
    String guarantee = args.string("guarantee", StreamsConfig.AT_LEAST_ONCE);
    if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE) && !guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
      System.err.println(PREFIX + ": --guarantee must be at_least_once or exactly_once_v2, got " + guarantee);
      System.exit(2);
    }
    boolean ownStateDir = args.string("state-dir", null) == null;
    Path stateDir = ownStateDir
        ? Files.createTempDirectory("sampleloop-kstreams-")
        : Path.of(args.string("state-dir", null));

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args.required("application-id"));
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.string("bootstrap", "127.0.0.1:19092"));
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, args.nonNegativeLong("commit-interval-ms", 100));
    props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, (int) args.nonNegativeLong("threads", 1));
    props.put(StreamsConfig.DESERIALIZATION_EXCEPTION_HANDLER_CLASS_CONFIG, LogAndContinueExceptionHandler.class);
    props.putAll(args.configs());

    JoinTopology.Settings settings = new JoinTopology.Settings(
        args.string("predictions-topic", "predictions"),
        args.string("feedback-topic", "feedback"),
        args.string("samples-topic", "samples"),
        Duration.ofMillis(args.nonNegativeLong("before-ms", 60_000)),
        Duration.ofMillis(args.nonNegativeLong("after-ms", 86_400_000)),
        Duration.ofMillis(args.nonNegativeLong("grace-ms", 3_600_000)));
    JoinTopology.Counters counters = new JoinTopology.Counters();
    KafkaStreams streams = new KafkaStreams(JoinTopology.build(settings, new Privacy(privacyKey()), counters), props);

    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      System.out.println(PREFIX + " state " + now);
      if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) stopped.countDown();
    });
    streams.setUncaughtExceptionHandler(e -> {
      System.err.println(PREFIX + ": stream thread failed: " + e);
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close(Duration.ofSeconds(30));
      System.out.printf("%s stats {\"samples\":%d,\"needsReview\":%d,\"invalidFeedback\":%d}%n",
          PREFIX, counters.samples.get(), counters.needsReview.get(), counters.invalidFeedback.get());
      System.out.flush();
      if (ownStateDir) deleteTree(stateDir);
    }, PREFIX + "-shutdown"));
    streams.start();
    stopped.await();
    // The client shut itself down (error): exit non-zero; the hook still prints the stats.
    System.exit(1);
  }

  /** SAMPLELOOP_PRIVACY_KEY as hex or base64 (like sampleloop), else a random key for this run. */
  private static byte[] privacyKey() {
    String text = System.getenv("SAMPLELOOP_PRIVACY_KEY");
    if (text == null || text.isBlank()) {
      byte[] key = new byte[32];
      new SecureRandom().nextBytes(key);
      return key;
    }
    String t = text.trim();
    if (t.length() % 2 == 0 && t.matches("[0-9a-fA-F]+")) return HexFormat.of().parseHex(t);
    return Base64.getDecoder().decode(t);
  }

  private static void deleteTree(Path root) {
    try (Stream<Path> paths = Files.walk(root)) {
      paths.sorted(Comparator.reverseOrder()).forEach(p -> {
        try {
          Files.deleteIfExists(p);
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      });
    } catch (IOException | UncheckedIOException e) {
      System.err.println(PREFIX + ": could not delete state dir " + root + ": " + e.getMessage());
    }
  }
}
