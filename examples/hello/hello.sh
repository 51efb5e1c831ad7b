#!/bin/sh
# Prints on stdout and stderr (the console shows stderr in red) and leaves a file in /build,
# which `rai get JOB -o DIR` (or `rai submit --output DIR`) brings back.
set -e
echo "hello from rai: this runs in a container on $(hostname)"
echo "working directory: $(pwd)"
i=1
while [ "$i" -le 5 ]; do
  echo "step $i of 5"
  sleep 0.3
  i=$((i + 1))
done
echo "a warning, on stderr" >&2
echo "written by examples/hello at $(date -u '+%Y-%m-%d %H:%M:%S UTC')" > /build/hello.txt
echo "wrote /build/hello.txt ($(wc -c < /build/hello.txt) bytes)"
