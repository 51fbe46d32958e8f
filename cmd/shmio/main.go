// Command shmio creates, inspects, feeds and benchmarks shmio shared-memory logs.
//
// Each subcommand lives in its own file (create.go, stat.go, ...) with its test beside it and
// registers itself with register in an init function, so this file stays a thin shell.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/shmio/shmio/internal/bench"
	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:   "shmio",
	Short: "Shared-memory append-only logs: create, inspect, feed, follow and benchmark them",
	Long: `shmio works with shmio logs: memory-mapped, append-only files (usually under /dev/shm)
that one writer process fills and any number of reader processes follow.

Start with "shmio demo", which runs a writer and three readers for a few seconds.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

// register adds a subcommand to the root command; subcommand files call it from init.
func register(c *cobra.Command) { rootCmd.AddCommand(c) }

// exitError carries a specific exit code (for example verify's 1 for "log is corrupt")
// without printing a stack trace or usage text.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	// demo and bench run their workloads in this binary, re-executed as a child process.
	if code, ok := bench.ChildMain(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the process exit code; errors are one line on stderr.
func run(args []string) int {
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "shmio: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 2
}
