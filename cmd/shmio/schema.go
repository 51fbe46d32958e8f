package main

// --schema and --type, shared by tail, dump and append: frames as typed events, encoded as Node's
// bendec encodes them (see the bendec package for the JSON mapping).

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/shmio/shmio"
	"github.com/shmio/shmio/bendec"
	"github.com/spf13/cobra"
)

// schemaOptions are the --schema and --type flags of a verb.
type schemaOptions struct {
	file string
	typ  string
}

// schemaHelp ends the Long help of the verbs that take --schema.
const schemaHelp = `

--schema FILE --type NAME treats every frame as a bendec event of type NAME, FILE being the
JSON array of type definitions Node's bendec (0.51.0) takes as new Bendec({ types }). In JSON,
integers are numbers (64-bit ones exact), char arrays strings, enums variant names (numbers
accepted on input), bitflags lists of names, and a union is the object of the member its
discriminator picks. A frame read may be longer than the type: bendec ignores the rest.`

func addSchemaFlags(cmd *cobra.Command, o *schemaOptions) {
	f := cmd.Flags()
	f.StringVar(&o.file, "schema", "", "bendec schema file: frames are events of --type")
	f.StringVar(&o.typ, "type", "", "with --schema: the type of every frame (a struct or a union)")
}

// load returns the --type of the --schema file, or nil when neither flag is given.
func (o schemaOptions) load() (*bendec.Type, error) {
	if o.file == "" && o.typ == "" {
		return nil, nil
	}
	if o.file == "" {
		return nil, errors.New("--type needs --schema FILE (a bendec schema)")
	}
	data, err := os.ReadFile(o.file)
	if err != nil {
		return nil, fmt.Errorf("--schema %s: %w", o.file, unwrapPathError(err))
	}
	s, err := bendec.Load(data)
	if err != nil {
		return nil, fmt.Errorf("--schema %s: %w", o.file, err)
	}
	if o.typ == "" {
		return nil, fmt.Errorf("--schema needs --type NAME, one of the types in %s: %s", o.file, strings.Join(s.Types(), ", "))
	}
	t, err := s.Type(o.typ)
	if err != nil {
		return nil, fmt.Errorf("--type %s: no such type in %s (it has: %s)", o.typ, o.file, strings.Join(s.Types(), ", "))
	}
	return t, nil
}

// eventPrinter is tail's formatter with --schema: a frame decoded as one JSON object per line,
// or with --format json beside its cursor as "value". A frame that does not decode prints
// nothing; it is reported on stderr (flushBad) and counted.
type eventPrinter struct {
	typ    *bendec.Type
	t      *target
	json   bool
	bad    []byte // stderr lines of the frames in the current batch that did not decode
	nbad   int64
	prefix string // "shmio: PATH: "
}

func newEventPrinter(typ *bendec.Type, t *target, format string, raw bool) (*eventPrinter, error) {
	if raw {
		return nil, errors.New("--raw prints payload bytes; with --schema frames print as JSON")
	}
	if format != "text" && format != "json" {
		return nil, fmt.Errorf("--schema prints events as JSON: want --format text (the object) or json (the object as \"value\" beside the cursor), not %q", format)
	}
	return &eventPrinter{typ: typ, t: t, json: format == "json", prefix: "shmio: " + t.path + ": "}, nil
}

// format appends frame f's line to buf; it allocates nothing for a frame that decodes.
func (p *eventPrinter) format(buf []byte, f shmio.Frame) []byte {
	start := len(buf)
	if p.json {
		buf = appendFrameHead(buf, f, p.t.q != nil)
		buf = append(buf, `,"value":`...)
	}
	buf, err := p.typ.AppendJSON(buf, f.Data)
	if err != nil {
		p.nbad++
		p.bad = fmt.Appendf(p.bad, "%sframe at cursor %s (%d bytes) does not decode as %s: %v\n",
			p.prefix, p.t.cursorString(f.Cursor), len(f.Data), p.typ.Name(), err)
		return buf[:start]
	}
	if p.json {
		buf = append(buf, '}')
	}
	return append(buf, '\n')
}

// flushBad writes the reports of the batch's frames that did not decode, after the batch's
// lines (so they follow the frame before them).
func (p *eventPrinter) flushBad(w io.Writer) {
	if len(p.bad) > 0 {
		_, _ = w.Write(p.bad)
		p.bad = p.bad[:0]
	}
}

// err is the exit-1 error when some frames did not decode, else nil.
func (p *eventPrinter) err() error {
	if p == nil || p.nbad == 0 {
		return nil
	}
	return &exitError{1, fmt.Errorf("%s: %d %s did not decode as %s (reported above)", p.t.path, p.nbad, plural(p.nbad, "frame"), p.typ.Name())}
}

// dumpEvent writes frame data decoded as typ field by field: path, type, offset, size, value.
// A frame that does not decode gets a "!!" line with the reason after the fields that did,
// then its bytes; dumpEvent then returns false.
func dumpEvent(out io.Writer, typ *bendec.Type, data []byte, maxBytes int) bool {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	var line []byte
	err := typ.Walk(data, func(f bendec.Field) error {
		line = append(line[:0], "  "...)
		line = append(line, f.Path...)
		line = append(line, '\t')
		line = append(line, f.Type...)
		line = append(line, "\toffset "...)
		line = strconv.AppendInt(line, int64(f.Offset), 10)
		line = append(line, "\tsize "...)
		line = strconv.AppendInt(line, int64(f.Size), 10)
		line = append(line, '\t')
		line = append(line, f.Value...)
		line = append(line, '\n')
		_, err := tw.Write(line)
		return err
	})
	tw.Flush()
	if err != nil {
		fmt.Fprintf(out, "  !! does not decode as %s: %v\n", typ.Name(), err)
		hexView(out, data, maxBytes)
		return false
	}
	if extra := len(data) - typ.Size(); extra > 0 {
		fmt.Fprintf(out, "  (%d %s after the %d of %s, ignored)\n", extra, plural(int64(extra), "byte"), typ.Size(), typ.Name())
	}
	return true
}

// eventEncoder is append's --schema: each input line, a JSON object, encoded as typ into one
// scratch frame, so a line that does not match leaves nothing appended behind it.
type eventEncoder struct {
	typ     *bendec.Type
	scratch []byte
}

func newEventEncoder(typ *bendec.Type, raw bool, maxPayload int) (*eventEncoder, error) {
	if raw {
		return nil, errors.New("--raw takes binary records; with --schema the input is one JSON object per line")
	}
	if typ.Size() > maxPayload {
		return nil, fmt.Errorf("--type %s is %d bytes, more than %d, the largest frame payload of this log (a --wide log holds more)", typ.Name(), typ.Size(), maxPayload)
	}
	return &eventEncoder{typ: typ, scratch: make([]byte, typ.Size())}, nil
}

// encode returns the frame for JSON line n; it stays valid until the next call. A union's frame
// has the union's size, as Node's writer.allocate(bendec.getSize(union)).
func (e *eventEncoder) encode(path, inName string, line []byte, n int64) ([]byte, error) {
	if _, err := e.typ.EncodeJSON(line, e.scratch); err != nil {
		return nil, fmt.Errorf("%s: line %d of %s does not match %s: %v", path, n, inName, e.typ.Name(), err)
	}
	return e.scratch, nil
}
