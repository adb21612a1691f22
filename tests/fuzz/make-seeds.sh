#!/bin/sh
# Regenerate the seed corpora tests/fuzz/{plugin,etcd,consul,config}/ from tests/data
# and hand-made cases. Each seed starts with the selector byte the target reads.
# Usage: sh tests/fuzz/make-seeds.sh   (from the top of the source tree)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
f=$top/tests/fuzz
d=$top/tests/data
sel() { printf "\\$(printf %03o "$1")"; } # one raw byte

# plugin: selector = index into the path table (+128: known option names enforced)
mkdir -p "$f/plugin"
i=0
for body in '' '{}' '{"Name":"v1"}' '{"Name":"v1","Opts":{"size":"1G","mode":"ro"}}' \
	'{"Name":"v1","ID":"0123abcd"}' '{"Name":"v1","ID":"x"}' '{"Name":"a.b-c_d"}' \
	'{"Name":"../etc"}' '{"Name":"v1","Opts":{"uid":"1000","gid":"1000"}}' \
	'{"Name":"v1","Opts":null}' '{"Name":["x"]}' '{"Name":"v\u00001"}' '[[[[[[[[1]]]]]]]]' \
	'{"Name":"v1","Opts":{"size":1}}' '{"Name":"","ID":""}'; do
	for p in 0 1 2 3 4 5 6 7 8 9 10 129; do
		{ sel $p; printf '%s' "$body"; } >"$f/plugin/seed-$i-$p"
	done
	i=$((i + 1))
done

# etcd: 0 = watch stream (next byte: chunk size - 1), 1 = unary answer, 2 = error status
mkdir -p "$f/etcd"
for s in "$d"/etcd/*.stream; do
	b=$(basename "$s" .stream)
	{ sel 0; sel 15; cat "$s"; } >"$f/etcd/stream-$b"
	{ sel 0; sel 255; cat "$s"; } >"$f/etcd/stream1-$b"
done
for j in "$d"/etcd/*.json; do
	b=$(basename "$j" .json)
	{ sel 1; cat "$j"; } >"$f/etcd/unary-$b"
	case $b in error_*) { sel 2; sel 1; sel 144; cat "$j"; } >"$f/etcd/status-$b" ;; esac
done

# consul: selector = parser (see fuzz_consul.c)
mkdir -p "$f/consul"
for j in "$d"/consul/*.json "$d"/consul/*.txt; do
	b=$(basename "$j")
	for p in 0 1 2 3 4 5; do
		{ sel $p; cat "$j"; } >"$f/consul/$p-$b"
	done
done
printf '\0066\n' >"$f/consul/6-index"
printf '\0061m30s' >"$f/consul/6-duration"
{ sel 7; cat "$d/consul/watch_list_1.json"; printf '\0'; cat "$d/consul/watch_list_2.json"; } \
	>"$f/consul/7-diff"
{ sel 8; printf '\001\0\0\0\0\0\0\0\002\0\0\0\0\0\0\0'; } >"$f/consul/8-index"

# config: the sample and test configs as they are
mkdir -p "$f/config"
for c in "$d"/conf/*.conf "$top"/conf/*.conf; do
	[ -f "$c" ] && cp "$c" "$f/config/$(basename "$c")"
done
mkdir -p "$f/plugin/regress" "$f/etcd/regress" "$f/consul/regress" "$f/config/regress"
