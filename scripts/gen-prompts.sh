#!/usr/bin/env bash
# Generates stirgate's built-in prompt set (crates/media/prompts/*.wav): 8 kHz, mono, 16-bit PCM.
#
# Run once when the wording changes, and commit the WAV files; stirgate itself never runs this.
# Needs espeak-ng and sox (Debian: apt-get install espeak-ng sox).
#   scripts/gen-prompts.sh [OUTPUT_DIR]
set -euo pipefail

out="${1:-$(cd "$(dirname "$0")/.." && pwd)/crates/media/prompts}"
voice="${VOICE:-en-us}"
speed="${SPEED:-150}"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "gen-prompts: $tool is not installed" >&2; exit 1; }
done

# speak NAME TEXT: espeak-ng at its native rate, then sox to 8 kHz mono 16-bit, with leading and
# trailing silence trimmed, a 50 ms pad each side, a telephone-band filter and -3 dBFS peaks.
speak() {
  local name="$1" text="$2"
  espeak-ng -v "$voice" -s "$speed" -w "$tmp/$name.raw.wav" "$text"
  sox "$tmp/$name.raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/$name.wav" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
    sinc 300-3400 gain -n -3 pad 0.05 0.05
}

speak greeting "Hello. You have reached a screened line. Please stay on the line."
speak record_name "Please say your name after the tone, then press pound."
speak leave_message "Please leave a message after the tone. Press star when you are done."
speak no_recording "I did not receive a recording."
speak call_from "You have a call from"
speak screen_choice "Press 1 to accept the call, or 2 to send it to voicemail."
speak enter_digits "Please enter the digits you hear, then press pound."
speak thank_you "Thank you."
speak goodbye "Sorry, goodbye."
for d in 0 1 2 3 4 5 6 7 8 9; do
  speak "digit_$d" "$d"
done

# The beep: 400 ms of 1 kHz at -6 dBFS with 10 ms fades (no clicks).
sox -n -r 8000 -c 1 -b 16 -e signed-integer "$out/beep.wav" \
  synth 0.4 sine 1000 gain -6 fade t 0.01 0.4 0.01

# Hold music: a 4-second loop of a soft arpeggio (C major, then A minor), made by sox alone.
notes=(261.63 329.63 392.00 523.25 220.00 261.63 329.63 440.00)
parts=()
for i in "${!notes[@]}"; do
  sox -n -r 8000 -c 1 -b 16 -e signed-integer "$tmp/n$i.wav" \
    synth 0.5 pluck "${notes[$i]}" gain -12 fade t 0.005 0.5 0.2
  parts+=("$tmp/n$i.wav")
done
sox "${parts[@]}" "$out/hold_music.wav" gain -n -6

ls -l "$out"
du -ch "$out"/*.wav | tail -1
