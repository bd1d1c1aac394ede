# Shared by bin/colliec and bin/collie: find a Java 25, build the jar when sources changed, and
# set the JVM flags the code needs. Sourced, not executed.
COLLIE_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COLLIE_JAR="$COLLIE_HOME/runtime/target/collie-all.jar"

java_major() {
  "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1
}

find_java() {
  local candidates=()
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME/bin/java")
  for d in /usr/lib/jvm/temurin-25* /usr/lib/jvm/*25*; do
    [ -x "$d/bin/java" ] && candidates+=("$d/bin/java")
  done
  command -v java >/dev/null 2>&1 && candidates+=("$(command -v java)")
  for j in "${candidates[@]}"; do
    local major
    major="$(java_major "$j")"
    if [ -n "$major" ] && [ "$major" -ge 25 ]; then
      echo "$j"
      return 0
    fi
  done
  echo "collie: error: Java 25 or newer is required (set JAVA_HOME)" >&2
  return 1
}

COLLIE_JAVA="$(find_java)" || exit 1
export JAVA_HOME="$(cd "$(dirname "$COLLIE_JAVA")/.." && pwd)"

# Build on first use, and again whenever a source, the grammar, a model or a pom is newer than the jar.
if [ ! -f "$COLLIE_JAR" ] || [ -n "$(find "$COLLIE_HOME/grammar" "$COLLIE_HOME/models" "$COLLIE_HOME"/*/src/main \
      "$COLLIE_HOME"/pom.xml "$COLLIE_HOME"/*/pom.xml -newer "$COLLIE_JAR" -type f 2>/dev/null | head -n1)" ]; then
  echo "collie: building (first use or sources changed)..." >&2
  log="$(mktemp)"
  if ! (cd "$COLLIE_HOME" && ./mvnw -B -q -DskipTests package) >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "collie: error: the build failed" >&2
    exit 1
  fi
  rm -f "$log"
fi

# Heap: tensors live off-heap, so the Java heap only holds small, short-lived objects. The serial
# collector with a small young generation keeps it near its live size (G1's default sizing let it
# grow to ~850 MB of garbage on a 24 GB machine, more than the 15m model's whole plan); it still
# grows when live data needs it. A training step makes about 10 MB/s of garbage once compiled, so
# an 8 MB young generation is collected every second or so, in under a millisecond; 32 MB cost
# 20 MB of RSS for nothing. The memory plan counts this floor as its runtime term. JAVA_OPTS,
# given after these flags, overrides them.
COLLIE_JVM_FLAGS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Dcollie.home="$COLLIE_HOME"
  -XX:+UseSerialGC -Xms24m -Xmn8m -XX:MinHeapFreeRatio=10 -XX:MaxHeapFreeRatio=30)
