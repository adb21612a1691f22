#!/bin/sh
# Run integration program $1 (multinode | faults) against backend $2. The module
# not built (e.g. --without-consul) is a skip, also under CI; a server that cannot
# start is not.
prog=${1:?usage: run.sh multinode|faults etcd|consul}
backend=${2:?usage: run.sh multinode|faults etcd|consul}
dir=${VFILE_BACKEND_DIR:-${top_builddir:-.}/.libs}
if [ ! -f "$dir/$backend.so" ]; then
	echo "SKIP: backend module $dir/$backend.so was not built"
	exit 77
fi
VFILE_INTEG_BACKEND=$backend
VFNODE=${top_builddir:-.}/tests/integration/vfnode
export VFILE_INTEG_BACKEND VFNODE
exec "${top_builddir:-.}/tests/integration/integ_$prog"
