#!/usr/bin/env bash
# The session shown in docs/cli.md, run for real against the bundled emulator: a batch stopped
# by Ctrl-C, its resume (which stops at --max-cost), then the bad line fixed and the rest run.
# Usage: bash docs/cli-session.sh [PORT]   (needs aiovideoextend[cli] installed)
set -u
port=${1:-8765}
cd "$(mktemp -d)"
python -m aiovideoextend emulator --port "$port" --time-scale 60 --seed 7 > emulator.log 2>&1 &
emulator=$!
trap 'kill -INT $emulator; wait $emulator' EXIT
sleep 1.5
python - <<'PY'
import json
models = ["veo3-1-extend", "veo3-1-fast-extend", "bytedance-seedance-v1.5-pro-extend"]
lines = [
    {"model": models[n % 3], "prompt": f"scene {n + 1}: the camera pulls back",
     "video_url": f"https://example.com/clips/{n + 1}.mp4"}
    for n in range(20)
]
lines[6] = {"model": "veo3-1-extend", "prompt": "scene 7: night falls"}  # no source video
with open("jobs.jsonl", "w") as f:
    f.writelines(json.dumps(line) + "\n" for line in lines)
PY
export NANOGPT_BASE_URL="http://127.0.0.1:$port/api" NANOGPT_API_KEY=sk-nano-test-0001
export PYTHONUNBUFFERED=1  # stdout and stderr in the order they were written

echo '$ aiovideoextend batch jobs.jsonl --time-scale 60 --max-cost 12'
aiovideoextend batch jobs.jsonl --time-scale 60 --max-cost 12 2>&1 &
batch=$!
sleep 3
echo '^C'
kill -INT $batch
wait $batch
code=$?; echo "\$ echo \$?"; echo $code

echo '$ aiovideoextend batch jobs.jsonl --time-scale 60 --max-cost 12'
aiovideoextend batch jobs.jsonl --time-scale 60 --max-cost 12 2>&1
code=$?; echo "\$ echo \$?"; echo $code

echo '$ # fix line 7 (give it its video_url), raise the limit'
sed -i '7s|.*|{"model": "veo3-1-extend", "prompt": "scene 7: night falls", "video_url": "https://example.com/clips/7.mp4"}|' jobs.jsonl
echo '$ aiovideoextend batch jobs.jsonl --time-scale 60 --max-cost 20'
aiovideoextend batch jobs.jsonl --time-scale 60 --max-cost 20 2>&1
code=$?; echo "\$ echo \$?"; echo $code
echo "\$ grep '\"line\": 7,' jobs.jsonl.results.jsonl | cut -c1-120"
grep '"line": 7,' jobs.jsonl.results.jsonl | cut -c1-120
