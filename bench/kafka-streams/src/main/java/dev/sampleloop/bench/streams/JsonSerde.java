package dev.sampleloop.bench.streams;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.StreamWriteFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.databind.ObjectWriter;
import java.io.IOException;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/**
 * Jackson serde for one value class. Jackson's fast double parser/writer are on: the records are
 * mostly doubles (features, scores) and JDK 17's own conversions dominate otherwise.
 */
public final class JsonSerde {
  private static final ObjectMapper MAPPER = new ObjectMapper(JsonFactory.builder()
          .enable(StreamReadFeature.USE_FAST_DOUBLE_PARSER)
          .enable(StreamWriteFeature.USE_FAST_DOUBLE_WRITER)
          .build())
      .configure(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES, true);

  private JsonSerde() {}

  public static <T> Serde<T> of(Class<T> type) {
    ObjectReader reader = MAPPER.readerFor(type);
    ObjectWriter writer = MAPPER.writerFor(type);
    Serializer<T> serializer = (topic, value) -> {
      if (value == null) return null;
      try {
        return writer.writeValueAsBytes(value);
      } catch (IOException e) {
        throw new SerializationException("cannot write " + type.getSimpleName() + " as JSON", e);
      }
    };
    Deserializer<T> deserializer = (topic, bytes) -> {
      if (bytes == null) return null;
      try {
        return reader.readValue(bytes);
      } catch (IOException e) {
        throw new SerializationException("invalid " + type.getSimpleName() + " JSON on " + topic, e);
      }
    };
    return Serdes.serdeFrom(serializer, deserializer);
  }
}
