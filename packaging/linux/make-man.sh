#!/usr/bin/env bash
# make-man.sh DEVICEMAP VERSION DATE OUT: the devicemap(1) man page, made from the program's own --help
# texts at build time so that the page and the program cannot disagree.
set -euo pipefail
bin="$1" version="$2" date="$3" out="$4"
# roff: a backslash is \e, a minus \-, and a line may not start with a control character.
escape() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
commands=$("$bin" --help | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p')
[[ -n "$commands" ]] || { echo "make-man.sh: '$bin --help' lists no commands" >&2; exit 1; }
{
  echo ".TH DEVICEMAP 1 \"$date\" \"devicemap $version\" \"User Commands\""
  echo ".SH NAME"
  echo "devicemap \\- plan, export and run device maps for language models that do not fit on one GPU"
  echo ".SH SYNOPSIS"
  echo ".B devicemap"
  echo ".I COMMAND"
  echo "[\\fIARGS\\fR]"
  echo ".br"
  echo ".B devicemap \\-\\-version"
  echo ".SH DESCRIPTION"
  echo ".B devicemap"
  echo "is the command-line twin of"
  echo ".BR devicemap\\-studio (1)."
  echo "It reads a Hugging Face checkpoint (or a model of its catalog, planned without downloading it),"
  echo "plans which layer goes to which GPU, to the CPU's memory or to the disk exactly as Accelerate's"
  echo "infer_auto_device_map does, writes the device_map.json that transformers and accelerate load"
  echo "unchanged, and loads the model by such a map to generate text."
  echo ".SH COMMANDS"
  for c in $commands; do
    echo ".SS $c"
    echo ".nf"
    "$bin" "$c" --help | escape
    echo ".fi"
  done
  echo ".SH EXIT STATUS"
  echo "0 on success; 1 on an error, which the message on standard error explains (the file, key or"
  echo "tensor and what is wrong); 2 for a command line that cannot be read; 3 for an internal error."
  echo ".SH ENVIRONMENT"
  echo ".TP"
  echo ".B DEVICEMAP_RESOURCES"
  echo "The folder of the catalog, hardware profiles and demo model, instead of the installed one."
  echo ".TP"
  echo ".BR HF_HUB_CACHE ", " HF_HOME"
  echo "Where models downloaded by Hugging Face tools are looked for (default ~/.cache/huggingface/hub)."
  echo ".SH FILES"
  echo ".TP"
  echo ".I /usr/share/devicemap\\-studio/catalog"
  echo "Architectures of popular models, for \\fBdevicemap plan catalog:NAME\\fR."
  echo ".TP"
  echo ".I /usr/share/devicemap\\-studio/profiles"
  echo "Hardware profiles, for \\fB\\-\\-profile NAME\\fR."
  echo ".TP"
  echo ".I /usr/share/devicemap\\-studio/demo"
  echo "stories260K, a small trained Llama model with its tokenizer, to try every command on."
  echo ".SH SEE ALSO"
  echo ".BR devicemap\\-studio (1)"
} > "$out.tmp"
mv "$out.tmp" "$out"
