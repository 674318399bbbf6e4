#!/usr/bin/env bash
# Issue 28's operator drill, as an operator would run it: WORKERS `hpo study box` processes (as
# separate machines would be) on one PostgreSQL and a real `mlflow server`; one worker SIGKILLed
# at KILL_AT s, the server stopped at STOP_AT s for DOWN s, then started again on the same store.
# Then it prints a table: each worker's exit code and tracebacks, Optuna's trials by state, and
# MLflow's trial runs against them (one run per trial, its status the trial's state, none
# RUNNING, the dead worker's run KILLED by its retry); `hpo report --to-mlflow` writes what is
# still missing, and the table is printed again.
#
#   HPO_TEST_PG_URL=postgresql+psycopg2://... bash benchmarks/scale_out_drill.sh [TRIALS]
#   (KILL_AT=20 STOP_AT=30 DOWN=20 WORKERS=3 by default; the kill waits for the worker's next
#   epoch line, up to MIDTRIAL_WAIT=120 half-seconds; everything stays on 127.0.0.1;
#   HPO_ARGS: more arguments for every worker, e.g. "--epochs 2 --data n_train=2000")
#   The table also gives the study's best val R2 and the trials a budget cut (issue 35).
set -euo pipefail
trials=${1:-30}
kill_at=${KILL_AT:-20} stop_at=${STOP_AT:-30} down=${DOWN:-20} workers=${WORKERS:-3}
pg=${HPO_TEST_PG_URL:?set HPO_TEST_PG_URL to a PostgreSQL URL}
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
work=$(mktemp -d)
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
name="drill-$(date +%s)"
uri="http://127.0.0.1:$port"
server=""

start_server() {
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$py" -m mlflow server --host 127.0.0.1 \
    --port "$port" --backend-store-uri "sqlite:///$work/server.db" \
    --artifacts-destination "$work/artifacts" --workers 1 >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 90); do  # bounded: it answers within seconds
    "$py" -c "import urllib.request as u; u.urlopen('$uri/health', timeout=2)" 2>/dev/null &&
      return 0
    sleep 1
  done
  echo "the mlflow server did not start (see $work/server.log)" >&2
  exit 1
}
stop_server() { kill -TERM -- "-$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
cleanup() {
  stop_server
  for p in "${pids[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

start_server
# one thread a worker (they share this machine's cores); a dead worker's trial is failed (and
# rerun) within 10 s: heartbeats every 3 s
export HPO_STORAGE=$pg MLFLOW_TRACKING_URI=$uri HPO_CACHE_DIR=$work/cache
export HPO_HEARTBEAT_SECONDS=3 HPO_GRACE_SECONDS=10 OMP_NUM_THREADS=1
pids=()
for i in $(seq 1 "$workers"); do
  # shellcheck disable=SC2086 # HPO_ARGS is a list of arguments
  (cd "$work" && exec "$py" -m hpo study box --trials "$trials" --study-name "$name" \
    ${HPO_ARGS:-} >"$work/worker-$i.out" 2>"$work/worker-$i.err") &
  pids+=($!)
done
t0=$(date +%s)
sleep "$kill_at"
# then mid-trial: after its next epoch line (a bounded wait)
for _ in $(seq 1 "${MIDTRIAL_WAIT:-120}"); do
  before=$(grep -c "  epoch " "$work/worker-1.err" || true)
  sleep 0.5
  [ "$(grep -c "  epoch " "$work/worker-1.err" || true)" -gt "$before" ] && break
done
disown "${pids[0]}"  # no "Killed" line from bash: the kill is the drill
kill -9 "${pids[0]}"
last=$(grep "  epoch " "$work/worker-1.err" | tail -n 1 | sed 's/^ *//' || true)
echo "t=$(($(date +%s) - t0)) s: worker 1 SIGKILLed, after: ${last:-no epoch yet}" >&2
left=$((stop_at - ($(date +%s) - t0)))
sleep $((left > 0 ? left : 0))
stop_server
echo "t=$(($(date +%s) - t0)) s: mlflow server stopped" >&2
sleep "$down"
start_server
echo "t=$(($(date +%s) - t0)) s: mlflow server started again" >&2
codes=()
for p in "${pids[@]:1}"; do
  if wait "$p"; then codes+=(0); else codes+=($?); fi
done
echo "t=$(($(date +%s) - t0)) s: the surviving workers ended (exit ${codes[*]})" >&2

check() {
  "$py" - "$pg" "$name" "$uri" "$work" "${codes[*]}" <<'EOF'
import collections, pathlib, sys
import optuna
from mlflow import MlflowClient
from hpo.search.record import TrialRecord
pg, name, uri, work, codes = sys.argv[1:]
status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
trials = optuna.load_study(study_name=name, storage=pg).trials
client = MlflowClient(tracking_uri=uri)
exp = client.get_experiment_by_name(name)
runs = client.search_runs([exp.experiment_id], "tags.kind = 'trial'") if exp else []
by_trial = collections.Counter(r.data.tags.get("trial_number") for r in runs)
mine = {int(r.data.tags["trial_number"]): r for r in runs}
states = collections.Counter(t.state.name for t in trials)
killed = [r for r in runs if r.data.tags.get("reason", "").startswith("its worker stopped")]
for r in killed:  # a dead worker's trial is failed in Optuna, and its run ended KILLED
    status[r.data.tags["trial_number"]] = "KILLED"
expected = lambda t: status.get(str(t.number), status.get(t.state.name))  # noqa: E731
wrong = [t.number for t in trials if t.number in mine and mine[t.number].info.status
         != expected(t)]
records = {t.number: TrialRecord.of(t) for t in trials}
budget_words = ("trial_timeout", "time budget", "wall clock")  # a reason a budget gave
cut = [n for n, r in records.items() if any(w in r.reason for w in budget_words)]
r2 = lambda ns: max((records[n].metrics.get("val_r2", -1e9) for n in ns), default=None)  # noqa: E731
complete = [t.number for t in trials if t.state.name == "COMPLETE"]
tracebacks = sum("Traceback" in p.read_text() for p in pathlib.Path(work).glob("worker-*.err"))
rows = [
    ("surviving workers' exit codes", codes),
    ("worker logs with a traceback", tracebacks),
    ("Optuna trials by state", dict(sorted(states.items()))),
    ("finished (complete + pruned)", states["COMPLETE"] + states["PRUNED"]),
    ("MLflow trial runs", len(runs)),
    ("trials without a run", sum(t.number not in mine for t in trials)),
    ("trials with two or more runs", sum(n > 1 for n in by_trial.values())),
    ("runs left RUNNING", sum(r.info.status == "RUNNING" for r in runs)),
    ("runs whose status is not the trial's state (KILLED: its worker died)", len(wrong)),
    ("runs ended KILLED for a dead worker", len(killed)),
    ("best val R2 of a complete trial", r2(complete)),
    ("trials cut by a budget", len(cut)),
    ("best val R2 of those cut (at their last epoch)", r2(cut)),
]
print("| check | value |\n| --- | --- |")
for what, value in rows:
    print(f"| {what} | {value} |")
for n in wrong:  # what does not match, in full
    t, r = trials[n], mine[n]
    print(f"trial {n}: {t.state.name}, its run {r.info.status}, tags {dict(r.data.tags)}")
    for log in sorted(pathlib.Path(work).glob("worker-*.err")):
        lines = log.read_text().splitlines()
        for i, line in enumerate(lines):
            if f"trial {n} " in line or f"trial {n}:" in line or f"Trial {n} " in line:
                print(f"  {log.name}: " + " / ".join(lines[i : i + 3]))
EOF
}
echo "## Straight after the study"
check
echo
echo "## After \`hpo report box --to-mlflow\`"
(cd "$work" && "$py" -m hpo report box --study-name "$name" --to-mlflow 2>&1 >/dev/null) |
  tail -n 1
check
