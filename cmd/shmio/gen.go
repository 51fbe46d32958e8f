package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/shmio/shmio/bendec"
	"github.com/shmio/shmio/internal/atomicfile"
	"github.com/spf13/cobra"
)

func init() { register(newGenCmd()) }

func newGenCmd() *cobra.Command {
	gen := &cobra.Command{
		Use:   "gen",
		Short: "Generate code from a bendec schema",
	}
	var schema, pkg, out string
	goCmd := &cobra.Command{
		Use:   "go --schema types.json --package NAME [--out FILE]",
		Short: "Generate Go types, encoders and zero-copy views from a bendec schema",
		Long: `Generate Go code from a bendec type schema: the JSON array of type definitions Node's bendec
(0.51.0) takes as new Bendec({ types }), so Go and Node share one schema file.

For each struct: a Go struct with Encode and Decode methods working in place on a frame (such as
one from Writer.Allocate) without allocating, a <T>Size constant, and a read-only zero-copy view
<T>View with one getter per field. For each enum: a named integer type with a constant per variant.
For each union: a <U>View with Kind (the discriminator) and As<Member> views. The output is
gofmt-formatted; it imports github.com/shmio/shmio/bendec for errors and helpers.

Without --out the code goes to standard output; with it, the file is replaced atomically.`,
		Example: `  shmio gen go --schema types.json --package events --out events/events_gen.go
  //go:generate shmio gen go --schema ../types.json --package events --out events_gen.go`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(schema)
			if err != nil {
				return fmt.Errorf("gen go: %w", err)
			}
			s, err := bendec.Load(data)
			if err != nil {
				return fmt.Errorf("gen go: %s: %w", schema, err)
			}
			src, err := bendec.GenerateGo(s, bendec.GenOptions{Package: pkg, Source: schema})
			if err != nil {
				return fmt.Errorf("gen go: %w", err)
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(src)
				return err
			}
			return writeGenerated(out, src)
		},
	}
	goCmd.Flags().StringVar(&schema, "schema", "", "bendec schema file (JSON array of type definitions)")
	goCmd.Flags().StringVar(&pkg, "package", "", "Go package name of the generated file")
	goCmd.Flags().StringVarP(&out, "out", "o", "", "output file (default: standard output)")
	_ = goCmd.MarkFlagRequired("schema")
	_ = goCmd.MarkFlagRequired("package")
	gen.AddCommand(goCmd)
	return gen
}

// writeGenerated replaces path with data through a temporary file and a rename, so a reader
// (or a failed run) never sees half a file; an existing file keeps its permission bits.
func writeGenerated(path string, data []byte) error {
	mode := fs.FileMode(0o644)
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		mode = fi.Mode().Perm()
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("gen go: %w", err)
	}
	if err := atomicfile.Write(path, data, mode); err != nil {
		return fmt.Errorf("gen go: %w", err)
	}
	return nil
}
