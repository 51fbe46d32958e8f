// Package frameinput splits an input stream into frame payloads, as shmio append reads it:
// lines, or records of a u32 little-endian length and the payload. Payloads longer than the
// log's largest frame are reported (with their line or record number) without being read whole.
package frameinput

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Lines calls frame for each line of br without its newline. Lines longer than maxPayload
// are reported without reading them whole.
func Lines(br *bufio.Reader, inName string, maxPayload int, frame func(p []byte, n int64) error) error {
	var long []byte // a line longer than br's buffer, being assembled
	for n := int64(1); ; {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(chunk) > maxPayload {
				return fmt.Errorf("%s: line %d is longer than %d bytes, the largest frame payload of this log (a --wide log holds more)", inName, n, maxPayload)
			}
			long = append(long, chunk...)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading %s: %w", inName, err)
		}
		line := chunk
		if long != nil {
			long = append(long, chunk...)
			line = long
		}
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		} else if len(line) == 0 && errors.Is(err, io.EOF) {
			return nil // no unterminated last line
		}
		if len(line) > maxPayload {
			return fmt.Errorf("%s: line %d is %d bytes, longer than %d bytes, the largest frame payload of this log (a --wide log holds more)", inName, n, len(line), maxPayload)
		}
		if ferr := frame(line, n); ferr != nil {
			return ferr
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		long = nil
		n++
	}
}

// Records calls frame for each record of br: a u32 little-endian length, then the payload.
func Records(br *bufio.Reader, inName string, maxPayload int, frame func(p []byte, n int64) error) error {
	var hdr [4]byte
	var buf []byte
	var offset int64
	for n := int64(1); ; n++ {
		k, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%s: record %d at byte %d: input ends inside its 4-byte length (%d bytes)", inName, n, offset, k)
			}
			return fmt.Errorf("reading %s: %w", inName, err)
		}
		size := binary.LittleEndian.Uint32(hdr[:])
		if uint64(size) > uint64(maxPayload) {
			return fmt.Errorf("%s: record %d at byte %d has length %d, more than %d bytes, the largest frame payload of this log", inName, n, offset, size, maxPayload)
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		p := buf[:size]
		if got, err := io.ReadFull(br, p); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: record %d at byte %d: input ends after %d of its %d bytes", inName, n, offset, got, size)
			}
			return fmt.Errorf("reading %s: %w", inName, err)
		}
		offset += 4 + int64(size)
		if err := frame(p, n); err != nil {
			return err
		}
	}
}
