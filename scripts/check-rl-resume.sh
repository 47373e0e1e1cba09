#!/bin/bash
# Checks on real data that `train rl --resume` continues bit-identically: runs a stage-2 config straight
# through, runs it again and kill -9s it after its first checkpoint, resumes it, then compares every
# logged step (wall times left out) and the final weights.
#   usage: scripts/check-rl-resume.sh <rl-config.json> <work-folder> [steps=6] [checkpoint-every=3]
set -eu
config=$(realpath "$1"); work=$2; steps=${3:-6}; every=${4:-3}
cli="node $(dirname "$(realpath "$0")")/../dist/src/cli/main.js"
mkdir -p "$work"; work=$(realpath "$work")
for name in straight killed; do
  rm -rf "${work:?}/$name"
  node -e '
    const [file, out, steps, every] = process.argv.slice(1);
    const c = JSON.parse(require("fs").readFileSync(file, "utf8"));
    Object.assign(c, { output: out, steps: Number(steps), checkpoint: { every: Number(every), keep: 2 } });
    process.stdout.write(JSON.stringify(c, null, 1));' "$config" "$work/$name" "$steps" "$every" > "$work/$name.json"
done
s=$SECONDS
$cli train rl --config "$work/straight.json" --quiet
echo "straight through: $((SECONDS - s)) s"
s=$SECONDS
$cli train rl --config "$work/killed.json" --quiet & pid=$!
first=$(printf '%s/killed/checkpoints/step-%08d' "$work" "$every")
while [ ! -d "$first" ]; do
  kill -0 $pid 2>/dev/null || { echo "the run ended before its first checkpoint" >&2; exit 1; }
  sleep 0.1
done
kill -9 $pid 2>/dev/null || { echo "the run finished before it could be killed; give it more steps" >&2; exit 1; }
wait $pid 2>/dev/null || true
echo "killed after $((SECONDS - s)) s, with checkpoints: $(ls "$work/killed/checkpoints" | tr '\n' ' ')"
s=$SECONDS
$cli train rl --config "$work/killed.json" --resume --quiet
echo "resumed and finished: $((SECONDS - s)) s"
node -e '
  const fs = require("fs"), crypto = require("crypto");
  const [work] = process.argv.slice(1);
  const times = new Set(["seconds", "encodeSeconds", "graphSeconds", "rolloutSeconds", "updateSeconds", "stepSeconds"]);
  const steps = (n) => fs.readFileSync(`${work}/${n}/metrics.jsonl`, "utf8").split("\n").filter((l) => l.includes("\"type\":\"train\""))
    .map((l) => JSON.stringify(JSON.parse(l, (k, v) => (times.has(k) ? undefined : v))));
  const sha = (n) => crypto.createHash("sha256").update(fs.readFileSync(`${work}/${n}/final/model.safetensors`)).digest("hex");
  const a = steps("straight"), b = steps("killed");
  const same = a.length === b.length && a.every((x, i) => x === b[i]);
  console.log(`logged steps: ${a.length} and ${b.length}, identical: ${same}`);
  console.log(`final weights sha256: ${sha("straight").slice(0, 16)} and ${sha("killed").slice(0, 16)}, identical: ${sha("straight") === sha("killed")}`);
  process.exit(same && sha("straight") === sha("killed") ? 0 : 1);' "$work"
