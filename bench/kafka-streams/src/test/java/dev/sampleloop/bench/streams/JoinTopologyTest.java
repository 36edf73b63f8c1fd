package dev.sampleloop.bench.streams;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JoinTopologyTest {
  private static final byte[] KEY = HexFormat.of().parseHex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  private static final long T0 = 1_790_000_000_000L;
  private static final ObjectMapper JSON = new ObjectMapper();

  private TopologyTestDriver driver;
  private TestInputTopic<String, String> predictions;
  private TestInputTopic<String, String> feedback;
  private TestOutputTopic<String, String> samples;
  private JoinTopology.Counters counters;
  @TempDir Path stateDir;

  @BeforeEach
  void setUp() {
    counters = new JoinTopology.Counters();
    JoinTopology.Settings settings = new JoinTopology.Settings(
        "p", "f", "s", Duration.ofSeconds(60), Duration.ofSeconds(60), Duration.ofSeconds(10));
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, "join-test");
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
    props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    driver = new TopologyTestDriver(JoinTopology.build(settings, new Privacy(KEY), counters), props);
    predictions = driver.createInputTopic("p", new StringSerializer(), new StringSerializer());
    feedback = driver.createInputTopic("f", new StringSerializer(), new StringSerializer());
    samples = driver.createOutputTopic("s", new StringDeserializer(), new StringDeserializer());
  }

  @AfterEach
  void tearDown() {
    driver.close();
  }

  private static String prediction(String id, String predicted, List<String> classes, long tp) {
    StringBuilder scores = new StringBuilder();
    for (String c : classes) scores.append(scores.length() == 0 ? "" : ",").append('"').append(c).append("\":").append(c.equals(predicted) ? 0.8 : 0.1);
    return "{\"requestId\":\"" + id + "\",\"category\":\"fraud\",\"features\":{\"amount\":12.5,\"count\":3},"
        + "\"attributes\":{\"name\":\"Olivia Okafor\",\"idNumber\":\"ID100007919\",\"phone\":\"+44 7700 900123\",\"channel\":\"web\"},"
        + "\"predictedLabel\":\"" + predicted + "\",\"scores\":{" + scores + "},\"modelVersion\":\"m1\",\"modelHash\":\"\","
        + "\"requestTimestamp\":" + (tp - 20) + ",\"timestamp\":" + tp + "}";
  }

  private static String feedback(String id, long tf, String actualLabel, Boolean correct) {
    return "{\"requestId\":\"" + id + "\",\"timestamp\":" + tf + ",\"source\":\"back-office\",\"actualLabel\":"
        + (actualLabel == null ? "null" : "\"" + actualLabel + "\"") + ",\"correct\":" + correct + "}";
  }

  private static RecordHeaders sentAt(String value) {
    RecordHeaders h = new RecordHeaders();
    h.add("sent-at", value.getBytes(StandardCharsets.UTF_8));
    return h;
  }

  @Test
  void confirmedSampleCarriesPredictionInputsProtectedAttributesAndTheTriggeringHeaders() throws Exception {
    predictions.pipeInput(new TestRecord<>("r1", prediction("r1", "fraud", List.of("fraud", "legit"), T0), sentAt("100"), T0));
    feedback.pipeInput(new TestRecord<>("r1", feedback("r1", T0 + 5_000, "fraud", null), sentAt("200"), T0 + 5_000));

    TestRecord<String, String> out = samples.readRecord();
    JsonNode s = JSON.readTree(out.value());
    assertEquals("r1", out.key());
    assertEquals(T0 + 5_000, out.timestamp());
    assertEquals("200", new String(out.headers().lastHeader("sent-at").value(), StandardCharsets.UTF_8));
    assertEquals("fraud", s.get("label").asText());
    assertEquals("CONFIRMED", s.get("labelSource").asText());
    assertEquals("fraud", s.get("predictedLabel").asText());
    assertEquals(T0 - 20, s.get("requestTimestamp").asLong());
    assertEquals(T0 + 5_000, s.get("feedbackTimestamp").asLong());
    assertEquals(0, s.get("revision").asInt());
    assertEquals("online", s.get("origin").asText());
    assertEquals(12.5, s.get("features").get("amount").asDouble());
    // Same tokens as processors/privacy.ts with this key (computed with node:crypto).
    assertEquals("tok_zxyqC2bN72Ywtrs3ZTjNWp", s.get("attributes").get("name").asText());
    assertEquals("tok_9oxgsn-Mp4q3qLRVOGfL5n", s.get("attributes").get("idNumber").asText());
    assertEquals("***********0123", s.get("attributes").get("phone").asText());
    assertEquals("web", s.get("attributes").get("channel").asText());
    assertTrue(samples.isEmpty());
  }

  @Test
  void labelingFollowsTheTable() throws Exception {
    predictions.pipeInput("a", prediction("a", "fraud", List.of("fraud", "legit"), T0), T0);
    predictions.pipeInput("b", prediction("b", "fraud", List.of("fraud", "legit"), T0), T0);
    predictions.pipeInput("c", prediction("c", "billing", List.of("billing", "support", "sales"), T0), T0);
    predictions.pipeInput("d", prediction("d", "billing", List.of("billing", "support", "sales"), T0), T0);
    feedback.pipeInput("a", feedback("a", T0 + 1, "legit", true), T0 + 1); // actualLabel wins over correct
    feedback.pipeInput("b", feedback("b", T0 + 2, null, false), T0 + 2); // two classes: the other one
    feedback.pipeInput("c", feedback("c", T0 + 3, null, false), T0 + 3); // three classes: needs review
    feedback.pipeInput("d", feedback("d", T0 + 4, null, true), T0 + 4);

    List<TestRecord<String, String>> out = samples.readRecordsToList();
    assertEquals(List.of("a", "b", "d"), out.stream().map(TestRecord::key).toList());
    JsonNode a = JSON.readTree(out.get(0).value());
    JsonNode b = JSON.readTree(out.get(1).value());
    JsonNode d = JSON.readTree(out.get(2).value());
    assertEquals(List.of("legit", "CORRECTED"), List.of(a.get("label").asText(), a.get("labelSource").asText()));
    assertEquals(List.of("legit", "CORRECTED"), List.of(b.get("label").asText(), b.get("labelSource").asText()));
    assertEquals(List.of("billing", "CONFIRMED"), List.of(d.get("label").asText(), d.get("labelSource").asText()));
    assertEquals(1, counters.needsReview.get());
  }

  @Test
  void windowIsAsymmetricAndInvalidFeedbackIsDropped() throws Exception {
    predictions.pipeInput("in-before", prediction("in-before", "fraud", List.of("fraud", "legit"), T0), T0);
    predictions.pipeInput("out-before", prediction("out-before", "fraud", List.of("fraud", "legit"), T0), T0);
    predictions.pipeInput("invalid", prediction("invalid", "fraud", List.of("fraud", "legit"), T0), T0);
    feedback.pipeInput("in-before", feedback("in-before", T0 - 60_000, "fraud", null), T0 - 60_000);
    feedback.pipeInput("out-before", feedback("out-before", T0 - 60_001, "fraud", null), T0 - 60_001);
    feedback.pipeInput("invalid", feedback("invalid", T0 + 1, "", null), T0 + 1);
    feedback.pipeInput("invalid", feedback("invalid", T0 + 2, null, null), T0 + 2);

    List<TestRecord<String, String>> out = samples.readRecordsToList();
    assertEquals(List.of("in-before"), out.stream().map(TestRecord::key).toList());
    assertEquals(2, counters.invalidFeedback.get());
  }

  @Test
  void maskKeepsTheLastCodePoints() {
    assertEquals("**34", Privacy.mask("1234", 2));
    assertEquals("12", Privacy.mask("12", 4));
    assertEquals("*\uD83D\uDE00b", Privacy.mask("a\uD83D\uDE00b", 2));
    Privacy p = new Privacy(KEY);
    assertEquals("tok_G4tmh0UOg8IhcfDnmnWRXN", p.tokenize("name", "García Ünicode"));
    assertEquals("tok_G4tmh0UOg8IhcfDnmnWRXN", p.tokenize("name", "tok_G4tmh0UOg8IhcfDnmnWRXN"));
    assertNull(Labeling.label(new Prediction(), withCorrect(false)));
  }

  private static Feedback withCorrect(boolean correct) {
    Feedback f = new Feedback();
    f.correct = correct;
    return f;
  }
}
