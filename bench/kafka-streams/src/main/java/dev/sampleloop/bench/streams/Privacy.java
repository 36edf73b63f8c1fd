package dev.sampleloop.bench.streams;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Pattern;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * sampleloop's default privacy rules (engine/config.ts): tokenize {@code idNumber} and {@code name},
 * mask {@code phone} keeping the last 4 characters. Same token format as processors/privacy.ts:
 * tok_ + base64url(HMAC-SHA-256(key, field + "\0" + value))[0..22]; both actions are idempotent.
 */
public final class Privacy {
  private static final String TOKEN_PREFIX = "tok_";
  private static final int TOKEN_CHARS = 22;
  private static final Pattern TOKEN = Pattern.compile("^tok_[A-Za-z0-9_-]{22}$");
  private static final String[] TOKENIZED = {"idNumber", "name"};
  private static final String MASKED = "phone";
  private static final int MASK_KEEP_LAST = 4;

  private final SecretKeySpec key;
  // Mac is not thread-safe; one per stream thread.
  private final ThreadLocal<Mac> mac;

  public Privacy(byte[] key) {
    this.key = new SecretKeySpec(key, "HmacSHA256");
    this.mac = ThreadLocal.withInitial(this::newMac);
  }

  private Mac newMac() {
    try {
      Mac m = Mac.getInstance("HmacSHA256");
      m.init(key);
      return m;
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("HmacSHA256 is not available", e);
    }
  }

  /** A copy of {@code attributes} with the sensitive fields protected. */
  public Map<String, String> protect(Map<String, String> attributes) {
    if (attributes == null) return Map.of();
    Map<String, String> out = new HashMap<>(attributes);
    for (String field : TOKENIZED) {
      String value = out.get(field);
      if (value != null) out.put(field, tokenize(field, value));
    }
    String phone = out.get(MASKED);
    if (phone != null) out.put(MASKED, mask(phone, MASK_KEEP_LAST));
    return out;
  }

  String tokenize(String field, String value) {
    if (value.length() == TOKEN_PREFIX.length() + TOKEN_CHARS && TOKEN.matcher(value).matches()) return value;
    byte[] digest = mac.get().doFinal((field + "\u0000" + value).getBytes(StandardCharsets.UTF_8));
    String encoded = Base64.getUrlEncoder().withoutPadding().encodeToString(digest);
    return TOKEN_PREFIX + encoded.substring(0, TOKEN_CHARS);
  }

  static String mask(String value, int keepLast) {
    int[] codePoints = value.codePoints().toArray();
    if (codePoints.length <= keepLast) return value;
    StringBuilder sb = new StringBuilder(value.length());
    for (int i = 0; i < codePoints.length - keepLast; i++) sb.append('*');
    for (int i = codePoints.length - keepLast; i < codePoints.length; i++) sb.appendCodePoint(codePoints[i]);
    return sb.toString();
  }
}
