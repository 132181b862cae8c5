# Shared by the vfio-mig-ctl test scripts (cli.sh, cli_v1.sh, real.sh):
# sourced after they set $tmp (a scratch directory) and fails=0.

# expect CODE DESCRIPTION -- COMMAND...: the exit code (CODE may list
# several, "0,3"), and for failures a single line on stderr (a usage error
# may add CLI11's "Run with --help").
expect() {
	want=$1; what=$2; shift 3
	"$@" >"$tmp/out" 2>"$tmp/err"
	got=$?
	case ",$want," in
	*",$got,"*) ;;
	*)	echo "FAIL: $what: exit $got, want $want"; cat "$tmp/out" "$tmp/err"
		fails=$((fails + 1)); return ;;
	esac
	if [ "$got" != 0 ] && [ "$(wc -l <"$tmp/err")" != 1 ] &&
	   ! grep -q "Run with --help" "$tmp/err"; then
		echo "FAIL: $what: not one line:"; cat "$tmp/err"
		fails=$((fails + 1)); return
	fi
	echo "ok: $what"
}

# has PATTERN FILE WHAT: grep, or count a failure.
has() {
	grep -q -- "$1" "$2" || { echo "FAIL: $3: no '$1' in:"; cat "$2"; fails=$((fails + 1)); }
}
