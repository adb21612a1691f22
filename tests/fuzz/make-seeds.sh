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

# #19 "Hostile input": comment, UTF-8 and depth seeds for every target.
py() { python3 -c "import sys; sys.stdout.buffer.write($1)"; }
# plugin: 6 = Get, 1 = Create, 3 = Mount, 7 = List; +128 enforces the known options
for body in '//"\n{"Name":"x","x":[[1]]}' '{"Name":"x" /* c */}' '{"Name":"x"}//' \
	'/*"*/{"Name":"x"}' '{"Name":"x","y":"/*"}' '# x\n{"Name":"x"}'; do
	n=$(printf '%s' "$body" | cksum | cut -d' ' -f1)
	{ sel 6; printf "$body"; } >"$f/plugin/hostile-comment-$n"
	{ sel 1; printf "$body"; } >"$f/plugin/hostile-comment-c-$n"
done
for s in '\\udc00' '\\ud800' '\\ud800\\u0041' '\\ud83d\\ude00' '\355\240\200' '\364\220\200\200' \
	'\300\257' '\340\200\257' '\370\210\200\200\200' '\200' '\303' 'caf\303\251' '\357\277\275'; do
	n=$(printf "$s" | cksum | cut -d' ' -f1)
	{ sel 1; printf '{"Name":"v","Opts":{"note":"a'; printf "$s"; printf 'b"}}'; } \
		>"$f/plugin/hostile-utf8-$n"
	{ sel 6; printf '{"Name":"v","k'; printf "$s"; printf '":1}'; } >"$f/plugin/hostile-utf8-key-$n"
	{ sel 1; printf '{"Name":"'; printf "$s"; printf '"}'; } >"$f/plugin/hostile-utf8-name-$n"
done
for d in 32 33 200; do
	{ sel 7; py "b'['*$d + b']'*$d"; } >"$f/plugin/hostile-depth-$d"
	{ sel 6; py "b'{\"Name\":\"v\",\"x\":' + b'{\"a\":'*$d + b'1' + b'}'*$d + b'}'"; } \
		>"$f/plugin/hostile-depth-obj-$d"
	{ sel 6; py "b'{\"a\\\\\"\":' + b'['*$d + b']'*$d + b'}'"; } >"$f/plugin/hostile-depth-q-$d"
done
for o in '"size":"18446744073709551616"' '"size":"9007199254740993T"' '"size":"8E"' \
	'"uid":"4294967295"' '"gid":"4294967294"' '"fileserver":"[fe80::1]:22"' \
	'"fileserver":"a b"' '"mode":"rwx"' '"size":"1\\u001b"'; do
	n=$(printf '%s' "$o" | cksum | cut -d' ' -f1)
	{ sel 129; printf '{"Name":"v","Opts":{%s}}' "$o"; } >"$f/plugin/hostile-opt-$n"
done
{ sel 3; printf '{"Name":"v","ID":"%s"}' "$(printf 'f%.0s' $(seq 65))"; } >"$f/plugin/hostile-id-65"
{ sel 3; printf '{"Name":"v","ID":"%064x"}' 1; } >"$f/plugin/hostile-id-64"
{ sel 6; printf '{"Name":"\\u001b[2K\\rFAKE \\u0007\\b\\u000b error:"}'; } >"$f/plugin/hostile-ctl"
{ sel 11; printf '{}'; } >"$f/plugin/hostile-unknown"
# the input that crashed vfiled (issue #19, item 1): it must keep failing cleanly
{ sel 6; py "b'/*\"*/' + b'['*32000 + b']'*32000"; } >"$f/plugin/regress/hostile-comment-depth-32000"
{ sel 1; printf '//"\n{"Name":"x","x":[[1]]}'; } >"$f/plugin/regress/hostile-comment-create"

# etcd (1 = unary answer) and consul (0..5 = parsers): the same shapes in store answers
for body in '{"header":{"revision":"5"}/*"*/,"kvs":[]}' '//"\n{"header":{}}' \
	'{"header":{"revision":"5"},"kvs":[{"key":"YQ==","value":"\355\240\200"}]}' \
	'{"header":{"revision":"5"},"kvs":[{"key":"\\udc00","value":"YQ=="}]}'; do
	n=$(printf '%s' "$body" | cksum | cut -d' ' -f1)
	{ sel 1; printf "$body"; } >"$f/etcd/hostile-$n"
done
{ sel 1; py "b'{\"header\":' + b'{\"a\":'*200 + b'1' + b'}'*200 + b'}'"; } >"$f/etcd/hostile-depth-200"
{ sel 1; py "b'/*\"*/' + b'['*5000 + b']'*5000"; } >"$f/etcd/hostile-comment-depth-5000"
for p in 0 1 2 3 4 5; do
	{ sel $p; printf '[{"Key":"a","Value":"YQ==","ModifyIndex":1}/*"*/]'; } >"$f/consul/hostile-$p-comment"
	{ sel $p; printf '[{"Key":"a\355\240\200","Value":"\\ud800","ModifyIndex":1}]'; } \
		>"$f/consul/hostile-$p-utf8"
	{ sel $p; py "b'['*200 + b']'*200"; } >"$f/consul/hostile-$p-depth-200"
done

# config: libconfig has comments of its own (#, //, /* */); quotes inside them, strings
# that are not UTF-8, deep groups, every socket_mode form
printf 'backend = "etcd"; /* " */ role = "worker"; // "\nnode_id = "n"; # "\n' \
	>"$f/config/hostile-comment.conf"
printf 'backend = "etcd";\nnode_id = "\355\240\200";\nprefix = "p\300\257/";\n' >"$f/config/hostile-utf8.conf"
py "b'backend = \"etcd\";\\nx = ' + b'{ a = '*100 + b'1;' + b'};'*100 + b'\\n'" >"$f/config/hostile-depth.conf"
for m in 0 432 '"0666"' '"0"' '" 660"' '"+660"' '"01777"' '["0660"]'; do
	n=$(printf '%s' "$m" | cksum | cut -d' ' -f1)
	printf 'backend = "etcd";\nsocket_mode = %s;\n' "$m" >"$f/config/hostile-mode-$n.conf"
done
