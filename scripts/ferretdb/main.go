// Command si-ferretdb runs FerretDB v1.24 (a MongoDB wire-protocol server) on its embedded
// SQLite backend for SuperInsights' MongoDB test leg. It exists because a plain
// `go install …/cmd/ferretdb` build refuses to start without a generated version file; the
// embeddable package has no such check. Loopback only, no telemetry.
//
// With `-listen-addr 127.0.0.1:0` the system picks a free port; `-uri-file` then tells the
// caller which one: once the server accepts connections its `mongodb://` URI is written there
// (atomically, via a rename), so the file's existence is also the readiness signal.
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
	uriFile := flag.String("uri-file", "", "write the server's mongodb:// URI here once it listens")
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
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx) }()
	// MongoDBURI waits until Run has bound the listener, so the port in it is the real one.
	uri := server.MongoDBURI()
	fmt.Fprintf(os.Stderr, "si-ferretdb: listening on %s, data in %s\n", uri, *dir)
	if *uriFile != "" {
		if err := writeAtomically(*uriFile, uri+"\n"); err != nil {
			fmt.Fprintln(os.Stderr, "si-ferretdb: -uri-file:", err)
			stop()
			<-done
			os.Exit(1)
		}
	}
	if err := <-done; err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "si-ferretdb:", err)
		os.Exit(1)
	}
}

// writeAtomically writes content to a temporary file beside path, then renames it into place,
// so a reader polling for path never sees it half-written.
func writeAtomically(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
