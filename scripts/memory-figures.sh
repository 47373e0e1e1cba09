#!/usr/bin/env bash
# Peak RSS and wall time of the commands in README's "Large files are streamed" table, each run under
# /usr/bin/time -v on synthetic inputs made from SciFact (its corpus repeated with new ids, and a JSONL whose
# second line is one long line).
#
#   bash scripts/memory-figures.sh [MB ...]       corpus sizes in MB (default: 64 240 1024, the README's)
#
# Environment: MEMFIG_MB (the sizes, as the arguments), MEMFIG_LONG_MB (the long line, default 648; one under
# 64 MiB = 67.1 MB is read rather than refused), MEMFIG_TINY_PASSES (SciFact's corpus repeated for the tiny
# random model's eval, default 20: 103,660 documents),
# MEMFIG_SCIFACT (a BEIR SciFact folder; default ../shared/data/scifact, else demo/scifact),
# MEMFIG_WORK (where the inputs are made; default a temporary folder removed at exit),
# MEMFIG_MODEL=1 (also embed SciFact test with models/search-r3-default: minutes on a few cores).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=${*:-${MEMFIG_MB:-64 240 1024}}
long_mb=${MEMFIG_LONG_MB:-648}
scifact=${MEMFIG_SCIFACT:-../shared/data/scifact}
[ -e "$scifact/corpus.jsonl" ] || scifact=demo/scifact
cli=(node dist/src/cli/main.js)
model=models/search-r3-default

[ -x /usr/bin/time ] || { echo "memory-figures: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
[ -f dist/src/cli/main.js ] || { echo "memory-figures: dist/ is missing; run npx tsc -p . first" >&2; exit 2; }

if [ -n "${MEMFIG_WORK:-}" ]; then
  work=$MEMFIG_WORK
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

rows=()
row() { rows+=("$(printf '%s\t%s\t%s\t%s\t%s' "$@")"); }
skip() { row "$1" "$2" "skipped" "-" "$3"; echo "skip: $1 ($2): $3" >&2; }

# The time -v report of a finished command, as "peak MiB<TAB>wall".
figures() {
  local kb wall
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$1")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1")
  printf '%s\t%s' "$(((kb + 512) / 1024))" "$wall"
}

# measure <command label> <input label> <command...>: runs it to the end (its exit code is reported, since
# the long-line rows are meant to end with exit 2).
measure() {
  local label=$1 input=$2 rc=0
  shift 2
  echo "run: $*" >&2
  /usr/bin/time -v -o "$work/time.txt" "$@" >"$work/out.txt" 2>"$work/err.txt" || rc=$?
  row "$label" "$input" "$(figures "$work/time.txt")" "exit $rc"
}

# measure_until <pattern> <command label> <input label> <command...>: runs it until a line of its stderr matches
# the pattern, then sends SIGTERM: index until encoding begins (its first progress line with a document encoded,
# after it has checked and staged the whole input), and mine up to the end of loading its data (its "mining N
# queries" line), since encoding a large corpus on a CPU, or mining it, takes hours.
measure_until() {
  local pattern=$1 label=$2 input=$3 tpid
  shift 3
  echo "run: $* (until its stderr matches '$pattern')" >&2
  : >"$work/err.txt"
  /usr/bin/time -v -o "$work/time.txt" "$@" >"$work/out.txt" 2>"$work/err.txt" &
  tpid=$!
  while kill -0 "$tpid" 2>/dev/null && ! tr '\r' '\n' <"$work/err.txt" | grep -q -E "$pattern"; do
    sleep 1
  done
  pkill -TERM -P "$tpid" 2>/dev/null || true
  wait "$tpid" || true
  row "$label" "$input" "$(figures "$work/time.txt")" "stopped there"
}

# beir_folder <dir>: SciFact's queries and qrels, for a corpus.jsonl the caller writes.
beir_folder() {
  mkdir -p "$1/qrels"
  cp "$scifact/queries.jsonl" "$1/"
  cp "$scifact"/qrels/*.tsv "$1/qrels/"
}

# renumbered <pass>: SciFact's corpus with ids r<pass>-<id>.
renumbered() { sed -E "s/\"_id\": *\"/\"_id\": \"r$1-/" "$work/scifact.jsonl"; }

# corpus <MB>: a BEIR folder whose corpus is SciFact's repeated with ids r<pass>-<id> up to MB megabytes.
corpus() {
  local dir=$work/beir-$1 target=$(($1 * 1000 * 1000)) pass=0
  beir_folder "$dir"
  : >"$dir/corpus.jsonl"
  while [ "$(stat -c %s "$dir/corpus.jsonl")" -lt "$target" ]; do
    renumbered "$pass" >>"$dir/corpus.jsonl"
    pass=$((pass + 1))
  done
  echo "$dir"
}

# flag_embedding <MB>: $work/pairs.jsonl, FlagEmbedding lines {query: title, pos: [text], neg: []} made from
# SciFact's documents and repeated up to MB megabytes, and prints a train sft config whose data is that file
# (what mine and train sft load).
flag_embedding() {
  node -e '
    const fs = require("fs");
    const pairs = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((line) => {
      const d = JSON.parse(line);
      return JSON.stringify({ query: d.title, pos: [d.text], neg: [] }) + "\n";
    });
    fs.writeFileSync(process.argv[2], pairs.join(""));
  ' "$work/scifact.jsonl" "$work/scifact-pairs.jsonl"
  : >"$work/pairs.jsonl"
  while [ "$(stat -c %s "$work/pairs.jsonl")" -lt $(($1 * 1000 * 1000)) ]; do
    cat "$work/scifact-pairs.jsonl" >>"$work/pairs.jsonl"
  done
  printf '{"model": "%s", "output": "%s", "data": [{"type": "jsonl", "path": "%s"}]}\n' \
    "$model" "$work/run" "$work/pairs.jsonl"
}

label() { echo "$1 MB ($(wc -l <"$2") lines)"; }

zcat -f "$scifact"/corpus.jsonl* >"$work/scifact.jsonl"

measure "eval --retriever bm25" "SciFact ($(wc -l <"$work/scifact.jsonl") docs)" \
  "${cli[@]}" eval --dataset "$scifact" --retriever bm25

for mb in $sizes; do
  free_mb=$(($(df -Pk "$work" | awk 'NR == 2 {print $4}') / 1024))
  if [ "$free_mb" -lt $((mb * 3 + 100)) ]; then
    skip "eval --retriever bm25; index; mine" "$mb MB" "only $free_mb MB free in $work"
    continue
  fi
  dir=$(corpus "$mb")
  measure "eval --retriever bm25" "$(label "$mb" "$dir/corpus.jsonl")" \
    "${cli[@]}" eval --dataset "$dir" --retriever bm25
  if [ -d "$model" ]; then
    rm -rf "$work/idx"
    measure_until 'encoding: [1-9]' "index until encoding begins" "$(label "$mb" "$dir/corpus.jsonl")" \
      "${cli[@]}" index --model "$model" --input "$dir/corpus.jsonl" --out "$work/idx"
    flag_embedding "$mb" >"$work/mine.json"
    measure_until '^mining [0-9]' "mine up to the end of data loading" "$(label "$mb" "$work/pairs.jsonl")" \
      "${cli[@]}" mine --config "$work/mine.json" --out "$work/mined.jsonl"
  else
    skip "index until encoding begins; mine" "$mb MB" "$model is missing"
  fi
  rm -rf "$dir" "$work/idx" "$work/pairs.jsonl"
done

# A BEIR folder whose corpus.jsonl has one ordinary line, then one of long_mb MB with no line break.
long=$work/beir-long
beir_folder "$long"
{
  head -n 1 "$work/scifact.jsonl"
  printf '{"_id": "long", "title": "", "text": "'
  head -c $((long_mb * 1000 * 1000)) /dev/zero | tr '\0' a
  printf '"}\n'
} >"$long/corpus.jsonl"
measure "eval --retriever bm25" "line 2 of $long_mb MB" "${cli[@]}" eval --dataset "$long" --retriever bm25
measure "tokenizer train" "line 2 of $long_mb MB" \
  "${cli[@]}" tokenizer train --input "$long/corpus.jsonl" --vocab-size 300 --out "$work/tok" --quiet
rm -rf "$long"

if [ "${MEMFIG_MODEL:-0}" = 1 ] && [ -d "$model" ]; then
  measure "eval --retriever $model" "SciFact test" "${cli[@]}" eval --dataset "$scifact" --retriever "$model"
else
  skip "eval --retriever $model" "SciFact test" "set MEMFIG_MODEL=1 (embeds 5,183 documents: minutes)"
fi
# The tiny random model of the tests (seed 5) over SciFact's corpus repeated MEMFIG_TINY_PASSES times (default 20:
# 103,660 documents), each cut to 68 tokens: the corpus embedding's memory without the shipped model's weights.
passes=${MEMFIG_TINY_PASSES:-20}
if [ -f dist/test/helpers/tiny-model.js ]; then
  node --input-type=module -e '
    import { tinyModel } from "./dist/test/helpers/tiny-model.js";
    import { saveModelFolder } from "./dist/src/model/model-folder.js";
    await saveModelFolder(process.argv[1], tinyModel(5));
  ' "$work/tiny"
  dir=$work/beir-tiny
  beir_folder "$dir"
  for ((pass = 0; pass < passes; pass++)); do renumbered "$pass"; done >"$dir/corpus.jsonl"
  measure "eval --retriever <tiny random model> --max-length 68" "$(wc -l <"$dir/corpus.jsonl") docs" \
    "${cli[@]}" eval --dataset "$dir" --retriever "$work/tiny" --max-length 68
  rm -rf "$dir"
else
  skip "eval --retriever <tiny random model>" "$passes × SciFact" \
    "dist/test/helpers/tiny-model.js is missing (npx tsc -p .)"
fi

{
  printf 'command\tinput\tpeak RSS (MiB)\twall\tresult\n'
  printf '%s\n' "${rows[@]}"
} | column -t -s $'\t'
