// Command si-ferretdb runs FerretDB v1.24 (a MongoDB wire-protocol server) on its embedded
// SQLite backend for SuperInsights' MongoDB test leg. It exists because a plain
// `go install …/cmd/ferretdb` build refuses to start without a generated version file; the
// embeddable package has no such check. Loopback only, no telemetry.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (loopback)")
	dir := flag.String("dir", "", "directory for the SQLite files (required)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "si-ferretdb: -dir is required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "si-ferretdb:", err)
		os.Exit(1)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "si-ferretdb: -log-level:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	server, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "si-ferretdb:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "si-ferretdb: listening on %s, data in %s\n", *listen, *dir)
	if err := server.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "si-ferretdb:", err)
		os.Exit(1)
	}
}
