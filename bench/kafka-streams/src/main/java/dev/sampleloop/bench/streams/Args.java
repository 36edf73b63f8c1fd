package dev.sampleloop.bench.streams;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** {@code --name value} command-line options; {@code --config k=v} may repeat. */
public final class Args {
  private final Map<String, String> values = new HashMap<>();
  private final List<String> configs = new ArrayList<>();

  public Args(String[] argv, List<String> known) {
    for (int i = 0; i < argv.length; i++) {
      String arg = argv[i];
      if (!arg.startsWith("--") || i + 1 >= argv.length) throw new IllegalArgumentException("expected --name value, got " + arg);
      String name = arg.substring(2);
      String value = argv[++i];
      if (name.equals("config")) configs.add(value);
      else if (known.contains(name)) values.put(name, value);
      else throw new IllegalArgumentException("unknown option --" + name + " (known: " + String.join(", ", known) + ", config)");
    }
  }

  public String string(String name, String fallback) {
    return values.getOrDefault(name, fallback);
  }

  public String required(String name) {
    String v = values.get(name);
    if (v == null || v.isEmpty()) throw new IllegalArgumentException("--" + name + " is required");
    return v;
  }

  public long nonNegativeLong(String name, long fallback) {
    String v = values.get(name);
    if (v == null) return fallback;
    long n = Long.parseLong(v.replace("_", ""));
    if (n < 0) throw new IllegalArgumentException("--" + name + " must be >= 0, got " + v);
    return n;
  }

  /** The {@code --config k=v} pairs, in order. */
  public Map<String, String> configs() {
    Map<String, String> out = new HashMap<>();
    for (String kv : configs) {
      int eq = kv.indexOf('=');
      if (eq <= 0) throw new IllegalArgumentException("--config expects key=value, got " + kv);
      out.put(kv.substring(0, eq), kv.substring(eq + 1));
    }
    return out;
  }
}
