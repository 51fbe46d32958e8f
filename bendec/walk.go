package bendec

import (
	"strconv"
)

// Field is one leaf of a decoded frame, for field-by-field displays such as shmio dump.
type Field struct {
	Path   string // from the type's top: "timestamp", "header.msgType", "points[1].x"
	Offset int    // byte offset in the frame
	Size   int    // bytes
	Type   string // schema type: "u64", "Level" (an enum), "char[23]"
	Value  []byte // the value as JSON text, as AppendJSON writes it; valid only during the call
}

// Walk decodes a frame and calls fn for every primitive, enum and char array in it, in layout
// order (arrays element by element; for a union, the member's fields). It stops at the first
// error, from decoding (as Decode's) or from fn.
func (t *Type) Walk(frame []byte, fn func(Field) error) error {
	nd, err := t.member(frame)
	if err != nil {
		return err
	}
	w := walker{frame: frame, fn: fn, buf: make([]byte, 0, 64), top: nd.name}
	return w.walk(nd, "", 0)
}

type walker struct {
	frame []byte
	fn    func(Field) error
	buf   []byte
	top   string
}

func (w *walker) walk(nd *node, path string, off int) error {
	switch nd.kind {
	case nStruct:
		for i := range nd.fields {
			f := &nd.fields[i]
			p := f.name
			if path != "" {
				p = path + "." + f.name
			}
			if err := w.walk(f.node, p, off+f.off); err != nil {
				return err
			}
		}
		return nil
	case nArray:
		for i := 0; i < nd.n; i++ {
			if err := w.walk(nd.elem, path+"["+strconv.Itoa(i)+"]", off+i*nd.elem.size); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if w.buf, err = appendNode(w.buf[:0], nd, w.frame[off:]); err != nil {
		return at(at(err, path), w.top)
	}
	typ := nd.name
	if nd.kind == nString {
		typ = "char[" + strconv.Itoa(nd.n) + "]"
	}
	return w.fn(Field{Path: path, Offset: off, Size: nd.size, Type: typ, Value: w.buf})
}
