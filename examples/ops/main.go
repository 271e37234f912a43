// Command ops is an operator's view of a cluster through etcd's gateway: the
// status of every member as a table, the alarms raised, and a verified
// snapshot saved to a file with its progress.
//
// With ETCD_ENDPOINTS unset it starts an embedded 3-member cluster of its own
// in a temporary directory; set ETCD_ENDPOINTS=http://127.0.0.1:2379[,...] to
// look at a running cluster instead. The snapshot goes to -o (default: a file
// in the temporary directory).
//
//	go run ./examples/ops [-o backup.db]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/etcdgw/etcdgw"
	"github.com/etcdgw/etcdgw/internal/etcdtest"
)

func main() {
	out := flag.String("o", "", "where to save the snapshot (default: a temporary file)")
	flag.Parse()
	if err := run(*out); err != nil {
		log.Fatal(err)
	}
}

func run(out string) error {
	endpoints := os.Getenv("ETCD_ENDPOINTS")
	if endpoints == "" {
		cl, err := etcdtest.StartCluster(3, etcdtest.Config{Name: "ops"})
		if err != nil {
			return fmt.Errorf("starting an embedded cluster: %w", err)
		}
		defer cl.Close()
		endpoints = strings.Join(cl.Endpoints(), ",")
		fmt.Println("started an embedded cluster at", endpoints)
	}
	c, err := etcdgw.New(etcdgw.WithEndpoints(strings.Split(endpoints, ",")...))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The members, and the status of each: per-member calls go to the member
	// named and nowhere else.
	ml, err := c.MemberList(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tID\tNAME\tVERSION\tDB SIZE\tIN USE\tLEADER\tLEARNER\tRAFT TERM\tRAFT INDEX\tERRORS")
	var first string
	for _, m := range ml.Members {
		if len(m.ClientURLs) == 0 {
			fmt.Fprintf(tw, "-\t%x\t%s\t(not started)\t\t\t\t%v\t\t\t\n", m.ID, m.Name, m.IsLearner)
			continue
		}
		ep := m.ClientURLs[0]
		if first == "" {
			first = ep
		}
		s, err := c.Status(ctx, ep)
		if err != nil {
			fmt.Fprintf(tw, "%s\t%x\t%s\t%v\t\t\t\t\t\t\t\n", ep, m.ID, m.Name, err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%x\t%s\t%s\t%s\t%s\t%v\t%v\t%d\t%d\t%s\n", ep, m.ID, m.Name, s.Version,
			size(s.DBSize), size(s.DBSizeInUse), s.Leader == s.Header.MemberID, s.IsLearner,
			s.RaftTerm, s.RaftIndex, strings.Join(s.Errors, ", "))
	}
	tw.Flush()

	alarms, err := c.AlarmList(ctx)
	if err != nil {
		return err
	}
	if len(alarms.Alarms) == 0 {
		fmt.Println("\nalarms: none")
	}
	for _, a := range alarms.Alarms {
		fmt.Printf("\nalarm: %s on member %x\n", a.Type, a.MemberID)
	}
	if first == "" {
		return fmt.Errorf("no member has a client URL to take a snapshot from")
	}

	if out == "" {
		dir, err := os.MkdirTemp("", "etcdgw-ops")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		out = filepath.Join(dir, "snapshot.db")
	}
	fmt.Printf("\nsnapshot of %s to %s\n", first, out)
	last := time.Now()
	n, err := c.SnapshotToFile(ctx, first, out, func(done, total int64) {
		if time.Since(last) > 500*time.Millisecond || done == total {
			last = time.Now()
			fmt.Printf("  %s of %s (%d%%)\n", size(done), size(total), done*100/max(total, 1))
		}
	})
	if err != nil {
		return err
	}
	fmt.Printf("saved %s, checksum verified: restore it with etcdutl snapshot restore %s\n", size(n), out)
	return nil
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
