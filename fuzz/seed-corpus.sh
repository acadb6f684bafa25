#!/usr/bin/env bash
# Writes a small seed corpus for the value_codec fuzz target into
# fuzz/corpus/value_codec/ (gitignored; rerun this to recreate it).
#
# Each seed is the type byte code described at the top of
# fuzz_targets/value_codec.rs followed by a payload: a valid msgpack or JSON
# encoding of a value of that type, or a cty JSON type description.
set -euo pipefail

dir="$(cd "$(dirname "$0")" && pwd)/corpus/value_codec"
mkdir -p "$dir"

# msgpack [type JSON, value] header for a Dynamic value: fixarray 2, bin8.
dyn() {
    printf '\x92\xc4'
    printf "\\x$(printf %02x "${#1}")"
    printf '%s' "$1"
}

seed() { # name, then the bytes come from stdin
    cat > "$dir/$1"
}

# -- msgpack ---------------------------------------------------------------
printf '\x02\xa5hello'                                | seed mp-string
printf '\x01\xcd\x01\x00'                             | seed mp-number-uint16
printf '\x01\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00'     | seed mp-number-float
printf '\x01\xcf\xff\xff\xff\xff\xff\xff\xff\xff'     | seed mp-number-big
printf '\x01\xa51e400'                                | seed mp-number-text
printf '\x00\xc3'                                     | seed mp-bool
printf '\x04\x01\x93\x01\xd4\x00\x00\xc0'             | seed mp-list-unknown-null
printf '\x05\x02\x92\xa1a\xa1b'                       | seed mp-set
printf '\x06\x00\x82\xa1k\xc2\xa1l\xc3'               | seed mp-map
printf '\x07\x02\x00\x02\x92\xc3\xa1x'                | seed mp-tuple
# object {a: string, b: optional number}
printf '\x08\x02\x00\x02\x81\x01\x82\xa1a\xa2hi\xa1b\x05' | seed mp-object
# list(object {é: string})
printf '\x04\x08\x01\x07\x02\x91\x81\xa2\xc3\xa9\xa1z' | seed mp-list-object
{ printf '\x03'; dyn '"string"'; printf '\xa2hi'; }   | seed mp-dynamic-string
{ printf '\x03'; dyn '["list","number"]'; printf '\x92\x01\x02'; } | seed mp-dynamic-list
{ printf '\x03'; dyn '["object",{"id":"string","n":"dynamic"}]'
  printf '\x82\xa2id\xa1x\xa1n'; dyn '["set","bool"]'; printf '\x91\xc2'; } | seed mp-dynamic-object

# -- JSON ------------------------------------------------------------------
printf '\x08\x02\x00\x02\x81\x01{"a":"hi","b":1.5}'   | seed json-object
printf '\x03{"value":[1,"x"],"type":["tuple",["number","string"]]}' | seed json-dynamic
printf '\x06\x04\x01{"k":[1,2.5,-3e2,"7"],"l":null}'   | seed json-map-list
printf '\x02"esc\\u00e9\\ud83d\\ude00\\n"'             | seed json-string

# -- cty JSON type descriptions -------------------------------------------
printf '\x02["object",{"a":"string","b":["list","dynamic"]},["b"]]' | seed type-object
printf '\x02["map",["tuple",["bool",["set","number"]]]]' | seed type-map-tuple

echo "wrote $(ls "$dir" | wc -l) seeds to $dir"
