// Command benchratio reads `go test -bench` output (several -count runs) and
// prints, for every benchmark group, etcdgw against each baseline of the same
// group as a ratio of medians, beside the target of issue 6 where there is one,
// and the same ratio of the client's CPU time where the benchmark reports it.
//
// Benchmarks are named Group/.../contender: BenchmarkGet/g=16/etcdgw is
// compared with BenchmarkGet/g=16/raw, /naive and /clientv3.
//
//	go run ./scripts/benchratio bench.out
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// target is what issue 6 (or, where marked, issue 16) asks of a ratio. speed ratios are baseline ns/op
// divided by etcdgw ns/op: 2 means etcdgw takes half the time.
type target struct {
	group    *regexp.Regexp // the group, without the contender
	against  string         // the contender, or "" for a metric of etcdgw's own
	metric   string         // "ns/op" for speed ratios, else a unit of etcdgw's
	min, max float64        // bounds; 0 is none
	text     string
}

var targets = []target{
	{regexp.MustCompile(`^(Get|Set)/`), "raw", "ns/op", 0.95, 0, "≥ 0.95× raw net/http"},
	{regexp.MustCompile(`^Get/g=(64|256)/`), "clientv3", "ns/op", 1.0, 0, "≥ 1.0× clientv3 (issue 16)"},
	{regexp.MustCompile(`^WatchReplay/`), "raw", "ns/op", 0.9, 0, "≥ 0.9× raw line reading"},
	{regexp.MustCompile(`^WatchReplay/`), "clientv3", "ns/op", 1.0, 0, "≥ 1.0× clientv3"},
	{regexp.MustCompile(`^ReadDir/`), "naive", "ns/op", 2.0, 0, "≥ 2× naive encoding/json"},
	{regexp.MustCompile(`^ReadDir/`), "", "allocB/kvB", 0, 1.5, "≤ 1.5 B allocated per decoded B"},
	{regexp.MustCompile(`^(Range|Watch)Decode/`), "protojson", "ns/op", 10, 0, "≥ 10× protojson"},
	{regexp.MustCompile(`^(Range|Watch)Decode/`), "json", "ns/op", 3, 0, "≥ 3× encoding/json"},
	{regexp.MustCompile(`^(Range|Watch)Decode/`), "floor", "ns/op", 0.25, 0, "within 4× of base64+scan (≥ 0.25×)"},
	{regexp.MustCompile(`^(Range|Watch)Decode/`), "", "allocs/item", 0, 2, "≤ 2 allocs per kv/event"},
}

// line: BenchmarkGet/g=16/etcdgw-2  1000  123 ns/op  45 B/op ...
var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func main() {
	var in io.Reader = os.Stdin
	if len(os.Args) > 1 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	}
	// samples[name][unit] are the values of every run.
	samples := map[string]map[string][]float64{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if samples[m[1]] == nil {
				samples[m[1]] = map[string][]float64{}
			}
			samples[m[1]][f[i+1]] = append(samples[m[1]][f[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	var groups []string
	for name := range samples {
		if g, ok := strings.CutSuffix(name, "/etcdgw"); ok {
			groups = append(groups, g)
		}
	}
	sort.Slice(groups, func(i, j int) bool { return naturalLess(groups[i], groups[j]) })

	missed := 0
	fmt.Printf("%-32s %-18s %14s %14s %8s %9s  %s\n", "benchmark", "vs", "etcdgw", "baseline", "ratio", "cpu ratio", "target")
	for _, g := range groups {
		own := samples[g+"/etcdgw"]
		var others []string
		for name := range samples {
			if c, ok := strings.CutPrefix(name, g+"/"); ok && c != "etcdgw" && !strings.Contains(c, "/") {
				others = append(others, c)
			}
		}
		sort.Strings(others)
		for _, c := range others {
			e, b := median(own["ns/op"]), median(samples[g+"/"+c]["ns/op"])
			if e == 0 || b == 0 {
				continue
			}
			r := b / e
			// The client's own CPU, where measured: steadier than the time.
			cpu := ""
			for _, unit := range []string{"cpu-ns/op", "cpu-ns/event"} {
				if ce, cb := median(own[unit]), median(samples[g+"/"+c][unit]); ce > 0 && cb > 0 {
					cpu = fmt.Sprintf("%.2fx", cb/ce)
				}
			}
			fmt.Printf("%-32s %-18s %11.0f ns %11.0f ns %7.2fx %9s  %s\n", g, c, e, b, r, cpu, verdict(g, c, "ns/op", r, &missed))
		}
		for _, t := range targets {
			if t.against != "" || !t.group.MatchString(g+"/") {
				continue
			}
			v := median(own[t.metric])
			fmt.Printf("%-32s %-18s %14.3g %14s %8s %9s  %s\n", g, t.metric, v, "", "", "", verdict(g, "", t.metric, v, &missed))
		}
	}
	if missed > 0 {
		fmt.Printf("\n%d target(s) missed\n", missed)
	} else {
		fmt.Printf("\nevery target met\n")
	}
}

// verdict is the target for (group, contender, metric) and whether v meets it.
func verdict(group, against, metric string, v float64, missed *int) string {
	for _, t := range targets {
		if t.against != against || t.metric != metric || !t.group.MatchString(group+"/") {
			continue
		}
		ok := (t.min == 0 || v >= t.min) && (t.max == 0 || v <= t.max)
		if !ok {
			*missed++
			return "MISSED " + t.text
		}
		return "ok     " + t.text
	}
	return ""
}

// naturalLess orders names with their numbers by value, so that g=64
// comes before g=256.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		na, ra := leadingNumber(a)
		nb, rb := leadingNumber(b)
		switch {
		case na >= 0 && nb >= 0:
			if na != nb {
				return na < nb
			}
			a, b = ra, rb
		case a[0] != b[0]:
			return a[0] < b[0]
		default:
			a, b = a[1:], b[1:]
		}
	}
	return len(a) < len(b)
}

// leadingNumber splits the decimal number that s starts with from the rest;
// the number is -1 when s does not start with a digit.
func leadingNumber(s string) (int, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 9 {
		return -1, s
	}
	n, _ := strconv.Atoi(s[:i])
	return n, s[i:]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
