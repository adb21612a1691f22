#!/bin/sh
# Run the conformance suite against backend $1. The module not built (e.g.
# --without-consul) is a skip, also under CI; a server that cannot start is not.
backend=${1:?usage: run.sh etcd|consul}
dir=${VFILE_BACKEND_DIR:-${top_builddir:-.}/.libs}
if [ ! -f "$dir/$backend.so" ]; then
	echo "SKIP: backend module $dir/$backend.so was not built"
	exit 77
fi
VFILE_CONFORMANCE_BACKEND=$backend
export VFILE_CONFORMANCE_BACKEND
exec "${top_builddir:-.}/tests/conformance/conformance"
