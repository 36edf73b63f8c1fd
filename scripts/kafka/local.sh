#!/usr/bin/env bash
# Local single-node Kafka (KRaft, broker+controller in one JVM) and an Apicurio schema
# registry exposing the Confluent API, both run with plain `java` (no Docker).
#
#   scripts/kafka/local.sh fetch                       download into the cache (Maven)
#   scripts/kafka/local.sh check                       exit 0 if start can work here (java; cache or mvn)
#   scripts/kafka/local.sh start  [all|broker|registry]   start (reuses a running one), wait until ready
#   scripts/kafka/local.sh stop   [all|broker|registry]
#   scripts/kafka/local.sh status [all|broker|registry]   exit 0 when running, 3 when not
#   scripts/kafka/local.sh reset                       stop and delete the run dir (topics, offsets)
#
# Environment variables are documented in docs/local-kafka.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

CACHE_DIR="${SAMPLELOOP_CACHE_DIR:-$HOME/.cache/sampleloop}"
KAFKA_VERSION="${SAMPLELOOP_KAFKA_VERSION:-4.4.0}"
REGISTRY_VERSION="${SAMPLELOOP_REGISTRY_VERSION:-3.0.9}"
KAFKA_PORT="${SAMPLELOOP_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${SAMPLELOOP_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
REGISTRY_PORT="${SAMPLELOOP_REGISTRY_PORT:-18081}"
RUN_DIR="${SAMPLELOOP_KAFKA_RUN_DIR:-$CACHE_DIR/run}"
JAVA="${SAMPLELOOP_JAVA:-java}"
REGISTRY_JAVA="${SAMPLELOOP_REGISTRY_JAVA:-}"
KAFKA_JVM_OPTS="${SAMPLELOOP_KAFKA_JVM_OPTS:--Xms64m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent}"
REGISTRY_JVM_OPTS="${SAMPLELOOP_REGISTRY_JVM_OPTS:--Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
KAFKA_LOG_LEVEL="${SAMPLELOOP_KAFKA_LOG_LEVEL:-WARN}"
START_TIMEOUT="${SAMPLELOOP_KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${SAMPLELOOP_KAFKA_STOP_TIMEOUT:-30}"
USE_CDS="${SAMPLELOOP_KAFKA_CDS:-1}"
BROKER_EXTRA_PROPERTIES="${SAMPLELOOP_KAFKA_BROKER_PROPERTIES:-}"
# plaintext (default) or sasl_ssl: the client listener is SASL_SSL with SCRAM-SHA-512 (see docs/local-kafka.md).
SECURITY="${SAMPLELOOP_KAFKA_SECURITY:-plaintext}"
INTERNAL_PORT="${SAMPLELOOP_KAFKA_INTERNAL_PORT:-$((KAFKA_PORT + 2))}"
SCRAM_USER="${SAMPLELOOP_KAFKA_SCRAM_USER:-sampleloop}"

# Absolute paths: the registry runs from its own working dir, and pid checks compare the run dir.
CACHE_DIR="$(realpath -m "$CACHE_DIR")"
RUN_DIR="$(realpath -m "$RUN_DIR")"
KAFKA_HOME="$CACHE_DIR/kafka/$KAFKA_VERSION"
REGISTRY_HOME="$CACHE_DIR/apicurio-registry/$REGISTRY_VERSION"

log() { printf '[local-kafka] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH ($2)"
}

# ---------------------------------------------------------------- fetch

# Maven 3.8 prints colour resets even in batch mode; strip them (pipefail keeps its exit code).
mvn_quiet() {
  mvn -B -q -f "$SCRIPT_DIR/pom.xml" "$@" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2
}

run_mvn() {
  require mvn "needed once to download Kafka/Apicurio into $CACHE_DIR"
  if ! mvn_quiet "$@"; then
    log "maven failed online; retrying offline from ~/.m2"
    mvn_quiet -o "$@"
  fi
}

fetch_kafka() {
  [[ -f "$KAFKA_HOME/.complete" ]] && return 0
  log "fetching Kafka $KAFKA_VERSION into $KAFKA_HOME"
  mkdir -p "$(dirname "$KAFKA_HOME")"
  local tmp
  tmp="$(mktemp -d "$(dirname "$KAFKA_HOME")/.fetch.XXXXXX")"
  run_mvn dependency:copy-dependencies@kafka \
    -Dkafka.version="$KAFKA_VERSION" -Dkafka.lib.dir="$tmp/lib" ||
    { rm -rf "$tmp"; die "could not download Kafka $KAFKA_VERSION (network to Maven Central? see above)"; }
  ls "$tmp/lib"/kafka_2.13-*.jar >/dev/null 2>&1 || die "maven did not deliver kafka_2.13 $KAFKA_VERSION"
  touch "$tmp/.complete"
  rm -rf "$KAFKA_HOME"
  mv "$tmp" "$KAFKA_HOME"
}

fetch_registry() {
  [[ -f "$REGISTRY_HOME/.complete" ]] && return 0
  log "fetching Apicurio Registry $REGISTRY_VERSION into $REGISTRY_HOME"
  mkdir -p "$(dirname "$REGISTRY_HOME")"
  local tmp
  tmp="$(mktemp -d "$(dirname "$REGISTRY_HOME")/.fetch.XXXXXX")"
  # dependency:get 2.8 with transitive=false never reads the artifact's parent POM, which
  # Maven Central lacks for 3.0.9 (see pom.xml).
  run_mvn org.apache.maven.plugins:maven-dependency-plugin:2.8:get -Dtransitive=false \
    -Dartifact="io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
    -Ddest="$tmp/registry.tar.gz" ||
    { rm -rf "$tmp"; die "could not download Apicurio Registry $REGISTRY_VERSION (network to Maven Central? see above)"; }
  mkdir -p "$tmp/app"
  tar -xzf "$tmp/registry.tar.gz" -C "$tmp/app"
  rm -f "$tmp/registry.tar.gz"
  registry_jar_in "$tmp/app" >/dev/null || die "no runnable jar in the Apicurio $REGISTRY_VERSION archive"
  touch "$tmp/.complete"
  rm -rf "$REGISTRY_HOME"
  mv "$tmp" "$REGISTRY_HOME"
}

fetch() {
  mkdir -p "$CACHE_DIR"
  # One fetch at a time per cache (parallel test workers may all call start).
  (
    flock 9
    fetch_kafka
    fetch_registry
  ) 9>"$CACHE_DIR/.fetch.lock"
}

# Apicurio 3.0.x ships a legacy "-runner.jar"; 3.1+ ships Quarkus' fast-jar layout.
registry_jar_in() {
  local dir="$1" jar
  if [[ -f "$dir/quarkus-run.jar" ]]; then echo "$dir/quarkus-run.jar"; return 0; fi
  for jar in "$dir"/*-runner.jar; do
    [[ -f "$jar" ]] && { echo "$jar"; return 0; }
  done
  return 1
}

# ---------------------------------------------------------------- process helpers

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A pid counts as ours only if its command line carries our role and run dir (pid reuse).
pid_of() {
  local role="$1" pidfile="$RUN_DIR/$1.pid" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"-Dsampleloop.role=$role -Dsampleloop.run.dir=$RUN_DIR "* ]] || return 1
  echo "$pid"
}

stop_role() {
  local role="$1" pid waited=0
  if ! pid="$(pid_of "$role")"; then
    rm -f "$RUN_DIR/$role.pid"
    log "$role: not running"
    return 0
  fi
  local clean=1
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= STOP_TIMEOUT * 4)); then
      log "$role: pid $pid still alive after ${STOP_TIMEOUT}s, killing"
      kill -KILL "$pid" 2>/dev/null || true
      clean=0
      break
    fi
    sleep 0.25
    waited=$((waited + 1))
  done
  rm -f "$RUN_DIR/$role.pid"
  ((clean)) && cds_install "$role"
  rm -f "$RUN_DIR/$role.jsa" "$RUN_DIR/$role.cds"
  log "$role: stopped (pid $pid)"
}

# ---------------------------------------------------------------- class-data sharing
# Startup on 2 busy cores is dominated by class loading. The first JVM of a role that exits
# cleanly dumps the classes it loaded (-XX:ArchiveClassesAtExit); stop copies that archive into
# the cache and later starts map it (-XX:SharedArchiveFile). A JVM that finds the archive stale
# ignores it with a warning, and the key below changes whenever the java binary does.

cds_target() {
  local role="$1" java="$2" home="$3" bin key
  bin="$(readlink -f "$(command -v "$java")")"
  key="$(printf '%s %s' "$bin" "$(stat -c %Y "$bin")" | sha1sum | cut -c1-12)"
  echo "$home/cds/$role-$key.jsa"
}

# Prints the JVM flag for this start and remembers where a fresh dump should go.
cds_opts() {
  [[ "$USE_CDS" == 1 ]] || return 0
  local role="$1" target
  target="$(cds_target "$1" "$2" "$3")"
  if [[ -s "$target" ]]; then
    echo "-XX:SharedArchiveFile=$target"
  else
    echo "$target" >"$RUN_DIR/$role.cds"
    echo "-XX:ArchiveClassesAtExit=$RUN_DIR/$role.jsa"
  fi
}

cds_install() {
  local role="$1" target
  [[ -s "$RUN_DIR/$role.jsa" && -s "$RUN_DIR/$role.cds" ]] || return 0
  target="$(cat "$RUN_DIR/$role.cds")"
  [[ -s "$target" ]] && return 0
  mkdir -p "$(dirname "$target")"
  cp "$RUN_DIR/$role.jsa" "$target.tmp.$$" && mv -f "$target.tmp.$$" "$target"
  log "$role: saved class-data archive $target"
}

show_log_tail() {
  local f
  for f in "$@"; do
    [[ -s "$f" ]] || continue
    log "---- last lines of $f"
    tail -n 40 "$f" >&2
  done
}

java_major() {
  "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

# ---------------------------------------------------------------- broker

secure() { [[ "$SECURITY" == "sasl_ssl" ]]; }

# TLS material for sasl_ssl, made once per run dir with openssl: a CA (ca.pem, for clients to trust)
# and the broker's key and certificate (SAN 127.0.0.1 and localhost) in a PKCS12 keystore; and the
# SCRAM user's random password (client.password, mode 600).
make_tls() {
  local dir="$RUN_DIR/tls"
  [[ -f "$dir/.complete" ]] && return 0
  require openssl "makes the certificates of the SASL_SSL listener"
  rm -rf "$dir" && mkdir -p "$dir" && chmod 700 "$dir"
  head -c 24 /dev/urandom | base64 | tr -d '+/=\n' >"$dir/keystore.password"
  head -c 24 /dev/urandom | base64 | tr -d '+/=\n' >"$dir/client.password"
  chmod 600 "$dir/keystore.password" "$dir/client.password"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=sampleloop local CA" \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" &&
      openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/broker.key" -out "$dir/broker.csr" &&
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/san.ext" &&
      openssl x509 -req -in "$dir/broker.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 30 -extfile "$dir/san.ext" -out "$dir/broker.pem" &&
      openssl pkcs12 -export -in "$dir/broker.pem" -inkey "$dir/broker.key" -certfile "$dir/ca.pem" \
        -name broker -out "$dir/broker.p12" -passout "file:$dir/keystore.password"
  } >>"$RUN_DIR/tools.log" 2>&1 || { show_log_tail "$RUN_DIR/tools.log"; die "could not make the TLS certificates"; }
  touch "$dir/.complete"
}

write_broker_config() {
  mkdir -p "$RUN_DIR/kafka-data"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT" advertised="PLAINTEXT://127.0.0.1:$KAFKA_PORT"
  local inter="PLAINTEXT" map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if secure; then
    # Clients: SASL_SSL. The broker's own traffic and the readiness probe: PLAINTEXT on 127.0.0.1 only.
    listeners="SASL_SSL://127.0.0.1:$KAFKA_PORT,INTERNAL://127.0.0.1:$INTERNAL_PORT"
    advertised="SASL_SSL://127.0.0.1:$KAFKA_PORT,INTERNAL://127.0.0.1:$INTERNAL_PORT"
    inter="INTERNAL"
    map="CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL"
  fi
  cat >"$RUN_DIR/server.properties" <<EOF
# Generated by scripts/kafka/local.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=$inter
listener.security.protocol.map=$map
log.dirs=$RUN_DIR/kafka-data
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
background.threads=4
log.retention.hours=168
EOF
  if secure; then
    cat >>"$RUN_DIR/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$RUN_DIR/tls/broker.p12
ssl.keystore.password=$(cat "$RUN_DIR/tls/keystore.password")
ssl.client.auth=none
EOF
  fi
  # Extra broker settings, one key=value a line (later lines win), e.g. log.retention.check.interval.ms=1000.
  if [[ -n "$BROKER_EXTRA_PROPERTIES" ]]; then
    printf '# SAMPLELOOP_KAFKA_BROKER_PROPERTIES\n%s\n' "$BROKER_EXTRA_PROPERTIES" >>"$RUN_DIR/server.properties"
  fi
  cat >"$RUN_DIR/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $RUN_DIR/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = $KAFKA_LOG_LEVEL
rootLogger.appenderRef.file.ref = FILE
# keeps the "Kafka Server started" / shutdown lines even at WARN
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
EOF
  cat >"$RUN_DIR/log4j2-tools.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $RUN_DIR/tools.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
EOF
}

format_storage() {
  [[ -f "$RUN_DIR/kafka-data/meta.properties" ]] && return 0
  local cluster_id="-"
  # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding. Like Kafka's own
  # Uuid.randomUuid, avoid a leading '-': the storage tool's argument parser takes it for an option.
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  log "broker: formatting storage in $RUN_DIR/kafka-data (cluster $cluster_id)"
  local scram=()
  # The SCRAM user exists from the first start (KRaft stores credentials in the metadata log).
  secure && scram=(--add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$(cat "$RUN_DIR/tls/client.password")]")
  "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$RUN_DIR/log4j2-tools.properties" \
    -cp "$KAFKA_HOME/lib/*" kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$RUN_DIR/server.properties" "${scram[@]}" >>"$RUN_DIR/tools.log" 2>&1 ||
    { show_log_tail "$RUN_DIR/tools.log"; die "kafka storage format failed"; }
}

# Compiles the metadata probe once per source version; empty output when no javac.
probe_classes() {
  command -v javac >/dev/null 2>&1 || return 0
  local sum dir
  sum="$(sha1sum "$SCRIPT_DIR/KafkaReady.java" | cut -c1-12)"
  dir="$KAFKA_HOME/probe-$sum"
  if [[ ! -f "$dir/KafkaReady.class" ]]; then
    mkdir -p "$dir.tmp"
    javac -nowarn -d "$dir.tmp" -cp "$KAFKA_HOME/lib/*" "$SCRIPT_DIR/KafkaReady.java" >&2 || { rm -rf "$dir.tmp"; return 0; }
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

wait_broker() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT)) probe probe_port="$KAFKA_PORT"
  secure && probe_port="$INTERNAL_PORT"
  until port_open "$probe_port"; do
    kill -0 "$pid" 2>/dev/null || { show_log_tail "$RUN_DIR/broker.out" "$RUN_DIR/broker.log"; die "broker exited during startup"; }
    ((SECONDS < deadline)) || { show_log_tail "$RUN_DIR/broker.log"; die "broker not listening on $KAFKA_PORT after ${START_TIMEOUT}s"; }
    sleep 0.2
  done
  probe="$(probe_classes)"
  if [[ -n "$probe" ]]; then
    local left=$((deadline - SECONDS))
    ((left > 5)) || left=5
    "$JAVA" -Xmx64m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$RUN_DIR/log4j2-tools.properties" \
      -cp "$probe:$KAFKA_HOME/lib/*" KafkaReady "127.0.0.1:$probe_port" "$((left * 1000))" >&2 ||
      { show_log_tail "$RUN_DIR/broker.log"; die "broker does not answer metadata requests"; }
  else
    # Without javac: the port is open and the server logged that startup completed.
    until grep -q "Kafka Server started" "$RUN_DIR/broker.log" 2>/dev/null; do
      ((SECONDS < deadline)) || die "broker did not log 'Kafka Server started' within ${START_TIMEOUT}s"
      sleep 0.2
    done
  fi
}

start_broker() {
  local pid
  if pid="$(pid_of broker)"; then
    local running_port
    running_port="$(cat "$RUN_DIR/broker.port" 2>/dev/null || echo "$KAFKA_PORT")"
    [[ "$running_port" == "$KAFKA_PORT" ]] || log "broker: already running on port $running_port (not $KAFKA_PORT) for $RUN_DIR; reusing it"
    log "broker: already running (pid $pid)"
    echo "bootstrap=127.0.0.1:$running_port"
    print_security
    return 0
  fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process (set SAMPLELOOP_KAFKA_PORT)"
  port_open "$CONTROLLER_PORT" && die "controller port $CONTROLLER_PORT is taken (set SAMPLELOOP_KAFKA_CONTROLLER_PORT)"
  require "$JAVA" "Java 17+ runs the broker"
  mkdir -p "$RUN_DIR"
  secure && make_tls
  write_broker_config
  format_storage
  local started=$SECONDS cds
  cds="$(cds_opts broker "$JAVA" "$KAFKA_HOME")"
  # shellcheck disable=SC2086 # JVM options are a word list on purpose
  setsid nohup "$JAVA" $KAFKA_JVM_OPTS $cds -Djava.awt.headless=true \
    -Dsampleloop.role=broker -Dsampleloop.run.dir="$RUN_DIR" \
    -Dlog4j2.configurationFile="$RUN_DIR/log4j2.properties" -Dkafka.logs.dir="$RUN_DIR" \
    -cp "$KAFKA_HOME/lib/*" kafka.Kafka "$RUN_DIR/server.properties" \
    >"$RUN_DIR/broker.out" 2>&1 </dev/null 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$RUN_DIR/broker.pid"
  echo "$KAFKA_PORT" >"$RUN_DIR/broker.port"
  wait_broker "$pid"
  log "broker: ready in $((SECONDS - started))s (pid $pid)"
  echo "bootstrap=127.0.0.1:$KAFKA_PORT"
  print_security
}

# With sasl_ssl: what a client needs (never the password itself, only the file that holds it).
print_security() {
  secure || return 0
  echo "security.protocol=SASL_SSL"
  echo "sasl.mechanisms=SCRAM-SHA-512"
  echo "sasl.username=$SCRAM_USER"
  echo "sasl.password.file=$RUN_DIR/tls/client.password"
  echo "ssl.ca.location=$RUN_DIR/tls/ca.pem"
}

# ---------------------------------------------------------------- registry

registry_java() {
  if [[ -n "$REGISTRY_JAVA" ]]; then echo "$REGISTRY_JAVA"; return; fi
  # Apicurio 3.1+ is compiled for Java 21; pick a newer JDK when the default one is older.
  if [[ "$REGISTRY_VERSION" != 3.0.* && "$REGISTRY_VERSION" != 2.* && "$(java_major "$JAVA")" -lt 21 ]]; then
    local candidate
    for candidate in /usr/lib/jvm/*/bin/java; do
      [[ -x "$candidate" && "$(java_major "$candidate")" -ge 21 ]] && { echo "$candidate"; return; }
    done
    log "registry: Apicurio $REGISTRY_VERSION needs Java 21+; set SAMPLELOOP_REGISTRY_JAVA"
  fi
  echo "$JAVA"
}

registry_url() { echo "http://127.0.0.1:$1/apis/ccompat/v7"; }

registry_answers() {
  local url
  url="$(registry_url "$1")/subjects"
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 3 "$url" 2>/dev/null
  else
    (
      exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
      printf 'GET /apis/ccompat/v7/subjects HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
      head -n 1 <&3 | grep -q ' 200 '
    ) 2>/dev/null
  fi
}

# Launching and awaiting are split so `start all` can boot the registry while the broker starts.
REGISTRY_PENDING_PID=""
REGISTRY_LAUNCHED_AT=0

launch_registry() {
  REGISTRY_PENDING_PID=""
  if pid_of registry >/dev/null; then return 0; fi
  port_open "$REGISTRY_PORT" && die "port $REGISTRY_PORT is taken by another process (set SAMPLELOOP_REGISTRY_PORT)"
  local jar java
  jar="$(registry_jar_in "$REGISTRY_HOME/app")" || die "Apicurio $REGISTRY_VERSION not in cache; run: $0 fetch"
  java="$(registry_java)"
  require "$java" "Java runs the schema registry"
  mkdir -p "$RUN_DIR/registry-work"
  REGISTRY_LAUNCHED_AT=$SECONDS
  local cds
  cds="$(cds_opts registry "$java" "$REGISTRY_HOME")"
  # cwd is a private dir so Quarkus does not pick up a stray ./config/application.properties or .env
  # shellcheck disable=SC2086 # JVM options are a word list on purpose
  (cd "$RUN_DIR/registry-work" && exec setsid nohup "$java" $REGISTRY_JVM_OPTS $cds \
    -Dsampleloop.role=registry -Dsampleloop.run.dir="$RUN_DIR" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.http.access-log.enabled=false \
    -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
    -Dapicurio.datasource.jdbc.max-size=20 \
    -Dapicurio.rest.deletion.group.enabled=true \
    -Dapicurio.rest.deletion.artifact.enabled=true \
    -Dapicurio.rest.deletion.artifact-version.enabled=true \
    -jar "$jar" >"$RUN_DIR/registry.log" 2>&1 </dev/null 8>&- 9>&-) &
  REGISTRY_PENDING_PID=$!
  echo "$REGISTRY_PENDING_PID" >"$RUN_DIR/registry.pid"
  echo "$REGISTRY_PORT" >"$RUN_DIR/registry.port"
}

await_registry() {
  local pid="$REGISTRY_PENDING_PID"
  if [[ -z "$pid" ]]; then
    log "registry: already running (pid $(pid_of registry || echo '?'))"
    echo "registry=$(registry_url "$(cat "$RUN_DIR/registry.port" 2>/dev/null || echo "$REGISTRY_PORT")")"
    return 0
  fi
  local deadline=$((REGISTRY_LAUNCHED_AT + START_TIMEOUT))
  until registry_answers "$REGISTRY_PORT"; do
    kill -0 "$pid" 2>/dev/null || { show_log_tail "$RUN_DIR/registry.log"; die "registry exited during startup"; }
    ((SECONDS < deadline)) || { show_log_tail "$RUN_DIR/registry.log"; die "registry did not answer within ${START_TIMEOUT}s"; }
    sleep 0.2
  done
  log "registry: ready in $((SECONDS - REGISTRY_LAUNCHED_AT))s (pid $pid)"
  echo "registry=$(registry_url "$REGISTRY_PORT")"
}

# ---------------------------------------------------------------- commands

status_role() {
  local role="$1" pid port
  if pid="$(pid_of "$role")"; then
    port="$(cat "$RUN_DIR/$role.port" 2>/dev/null || echo '?')"
    echo "$role: running pid=$pid port=$port rss_kb=$(ps -o rss= -p "$pid" | tr -d ' ')"
    return 0
  fi
  echo "$role: stopped"
  return 3
}

roles_for() {
  case "${1:-all}" in
    all) echo "broker registry" ;;
    broker | registry) echo "$1" ;;
    *) die "unknown component '$1' (all|broker|registry)" ;;
  esac
}

main() {
  local cmd="${1:-}" what="${2:-all}" role roles rc=0
  case "$cmd" in
    fetch) fetch ;;
    check)
      # Can `start` work here without surprises? (java present; jars cached or mvn to fetch them)
      command -v "$JAVA" >/dev/null 2>&1 || { echo "unavailable: no '$JAVA' on PATH"; return 1; }
      if [[ -f "$KAFKA_HOME/.complete" && -f "$REGISTRY_HOME/.complete" ]]; then
        echo "available: cached in $CACHE_DIR"
      elif command -v mvn >/dev/null 2>&1; then
        echo "available: will fetch with mvn into $CACHE_DIR"
      else
        echo "unavailable: nothing cached in $CACHE_DIR and no mvn to fetch it"
        return 1
      fi
      ;;
    start)
      fetch
      mkdir -p "$RUN_DIR"
      (
        flock 8 # the JVMs are started with fd 8 closed so they do not hold this lock
        roles=" $(roles_for "$what") "
        if [[ "$roles" == *" registry "* ]]; then launch_registry; fi
        if [[ "$roles" == *" broker "* ]]; then start_broker; fi
        if [[ "$roles" == *" registry "* ]]; then await_registry; fi
      ) 8>"$RUN_DIR/.start.lock"
      ;;
    stop)
      # registry first: it does not depend on the broker, but stopping it first keeps logs tidy
      for role in $(roles_for "$what" | tr ' ' '\n' | sort -r); do stop_role "$role"; done
      ;;
    status)
      for role in $(roles_for "$what"); do status_role "$role" || rc=3; done
      echo "run_dir=$RUN_DIR"
      return "$rc"
      ;;
    reset)
      for role in registry broker; do stop_role "$role"; done
      [[ -n "$RUN_DIR" && "$RUN_DIR" != "/" && "$RUN_DIR" != "$HOME" ]] || die "refusing to delete '$RUN_DIR'"
      rm -rf "$RUN_DIR"
      log "deleted $RUN_DIR"
      ;;
    *)
      sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
      [[ "$cmd" == "-h" || "$cmd" == "--help" || "$cmd" == "help" ]] || exit 2
      ;;
  esac
}

main "$@"
