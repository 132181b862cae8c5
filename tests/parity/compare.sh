#!/bin/bash
# compare.sh HOST_OUT GUEST_OUT [DOC]
#
# Compares two outputs of uvfio-parity line by line, by check ID: HOST_OUT
# from uvfio (simnic under uvfio-run), GUEST_OUT from Linux (mtty in the
# guest of `make test-kernel`, or tests/parity/kernel-6.12.expected). A
# check present on one side only, or with different results, is a failure
# unless DOC (default: Documentation/kernel-parity.md next to this tree)
# lists its ID. DOC's rows also say what each side gives: a listed
# difference whose observed result is not the documented one is a stale
# row, and fails too. So the document stays true.
#
# The lines of an output: "ID: result". Blank lines and lines starting
# with '#' are ignored. A result of "?" (only in a hand-derived expected
# file) means "not derived": that ID is not compared.
#
# DOC's machine-readable rows: every Markdown table row whose first cell
# is one backticked pattern:
#
#   | `ID-or-glob` | `uvfio result` | `Linux result` | ... |
#
# The pattern is a shell glob over IDs (`datafd.*.fl`); "\|" in a cell is
# a "|", as Markdown tables escape it. The second and
# third cells are checked against HOST_OUT and GUEST_OUT when they are
# exactly one backticked value; any other text there (prose, "varies",
# "-") is not checked. The first row that matches an ID is its row.
#
# Exit status: 0 when every difference is listed and no listed row is
# stale; 1 otherwise; 2 for bad arguments or malformed input.
set -u

usage() {
	echo "usage: compare.sh HOST_OUT GUEST_OUT [DOC]" >&2
	exit 2
}
[ $# -ge 2 ] && [ $# -le 3 ] || usage
host=$1
guest=$2
here=$(cd "$(dirname "$0")" && pwd)
doc=${3:-$here/../../Documentation/kernel-parity.md}
for f in "$host" "$guest" "$doc"; do
	[ -r "$f" ] || { echo "compare.sh: cannot read $f" >&2; exit 2; }
done

declare -A H G
declare -a order=()
declare -A seen=()

# load FILE ARRAYNAME: fill the array with ID -> result.
load() {
	local file=$1 line id res n=0
	local -n into=$2
	while IFS= read -r line || [ -n "$line" ]; do
		n=$((n + 1))
		case $line in '' | '#'*) continue ;; esac
		if [[ $line != *': '* ]]; then
			echo "compare.sh: $file:$n: not \"ID: result\": $line" >&2
			exit 2
		fi
		id=${line%%: *}
		res=${line#*: }
		if [[ -z $id || $id == *' '* ]]; then
			echo "compare.sh: $file:$n: bad ID: $line" >&2
			exit 2
		fi
		if [[ -n ${into[$id]+x} ]]; then
			echo "compare.sh: $file:$n: $id appears twice" >&2
			exit 2
		fi
		into[$id]=$res
		if [[ -z ${seen[$id]+x} ]]; then
			seen[$id]=1
			order+=("$id")
		fi
	done <"$file"
}
load "$host" H
load "$guest" G

# The document's rows: pattern, documented uvfio and Linux results.
declare -a pats=() dhost=() dguest=()
# cell TEXT: the value of a cell that is exactly one backticked string
# (a table's escaped "\|" stands for "|").
cell() {
	local c=${1//$'\x03'/|}
	c=${c#"${c%%[![:space:]]*}"}
	c=${c%"${c##*[![:space:]]}"}
	if [[ $c =~ ^\`([^\`]*)\`$ ]]; then
		printf '%s' "${BASH_REMATCH[1]}"
		return 0
	fi
	return 1
}
while IFS= read -r line; do
	[[ $line =~ ^\|[[:space:]]*\`([^\`]+)\`[[:space:]]*\| ]] || continue
	line=${line//\\|/$'\x03'}
	IFS='|' read -r _ c1 c2 c3 _ <<<"$line"
	p=$(cell "$c1") || continue
	pats+=("$p")
	if v=$(cell "$c2"); then dhost+=("$v"); else dhost+=($'\x01'); fi
	if v=$(cell "$c3"); then dguest+=("$v"); else dguest+=($'\x01'); fi
done <"$doc"

same=0 listed=0 skipped=0 fails=0
for id in "${order[@]}"; do
	h=${H[$id]-$'\x02'}
	g=${G[$id]-$'\x02'}
	if [[ $h == '?' || $g == '?' ]]; then
		skipped=$((skipped + 1))
		continue
	fi
	if [[ $h == "$g" ]]; then
		same=$((same + 1))
		continue
	fi
	show_h=${h/$'\x02'/(absent)}
	show_g=${g/$'\x02'/(absent)}
	row=-1
	for i in "${!pats[@]}"; do
		# shellcheck disable=SC2254
		case $id in ${pats[$i]}) row=$i; break ;; esac
	done
	if [ "$row" -lt 0 ]; then
		echo "UNLISTED  $id: uvfio: $show_h | linux: $show_g"
		fails=$((fails + 1))
		continue
	fi
	stale=""
	if [[ ${dhost[$row]} != $'\x01' && ${dhost[$row]} != "$h" ]]; then
		stale="uvfio gives \"$show_h\", the document says \"${dhost[$row]}\""
	fi
	if [[ ${dguest[$row]} != $'\x01' && ${dguest[$row]} != "$g" ]]; then
		stale="${stale:+$stale; }linux gives \"$show_g\", the document says \"${dguest[$row]}\""
	fi
	if [ -n "$stale" ]; then
		echo "STALE     $id (row \`${pats[$row]}\`): $stale"
		fails=$((fails + 1))
		continue
	fi
	listed=$((listed + 1))
done

echo "compare.sh: ${#order[@]} checks: $same equal, $listed listed differences," \
	"$skipped not derived, $fails failing"
[ "$fails" -eq 0 ]
