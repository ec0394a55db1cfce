# Sourced by bench/http.sh and bench/train.sh: wrk's summary as numbers, and a median.

# wrk_summary URL CONNS LUA SECONDS -> "req/s p50_us p99_us non2xx" (wrk with 1 thread for
# one connection, else 2; --latency for the percentiles)
wrk_summary() {
  wrk -t "$(( $2 < 2 ? 1 : 2 ))" -c "$2" -d "${4}s" --latency -s "$3" "$1" |
    awk '
      function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v }
      /Requests\/sec/ { rps = $2 }
      $1 == "50.000%" || $1 == "50%" { p50 = us($2) }
      $1 == "99.000%" || $1 == "99%" { p99 = us($2) }
      /Non-2xx/ { bad = $NF }
      END { printf "%.0f %.0f %.0f %d\n", rps, p50, p99, bad + 0 }'
}

# the median of the numbers on stdin, one a line
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
