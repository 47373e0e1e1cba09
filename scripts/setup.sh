#!/usr/bin/env bash
# One command that installs everything search-r3 needs on a fresh Debian machine:
# OpenBLAS (native backend), PyTorch (gradient oracle and speed peer for tests/benchmarks), two Debian
# text packages the pretraining corpus draws on (jargon-text: public domain; debian-reference-en: GPL-2+),
# Chromium and a font (the web pages' tests drive it headless through playwright-core, which downloads
# no browser), Redis (the job queue of distributed indexing, started by its tests on a free port),
# then npm packages, then the TypeScript build (so `npx search-r3 demo` works right after).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential python3 libopenblas-dev python3-torch python3-numpy \
  jargon-text debian-reference-en chromium fonts-dejavu-core redis-server >/dev/null
npm ci
npm run build
