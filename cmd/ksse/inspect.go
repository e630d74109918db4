package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/ksse-go/ksse/envelope"
)

const inspectSynopsis = "[FILE]"

const inspectDescription = `
Prints the header fields of the envelope in FILE (or standard input, also as
"-"), or of each envelope of a concatenation, as one JSON object per line,
without decrypting anything and without calling KMS:

  {"index":0,"offset":0,"version":1,"size":210,"bodyLength":87,"wrappedKeyLength":97,
   "salt":"…","kmsKeyId":"…","wrappedKeyFormat":"kmstest"}

size is the whole envelope; the body is the sealed partition key, the nonce,
the ciphertext and its tag; the wrapped key is the KMS CiphertextBlob of the
record's data key. kmsKeyId is the KMS key that the wrapped key names in clear,
or "unknown": the blobs of moto, local-kms and the ksse test KMS (kmstest)
name their key, while those of AWS KMS today carry an opaque key reference
(ask KMS, or use 'ksse decrypt', which authenticates it).

Nothing here is authenticated: a tampered envelope shows tampered fields.
Bytes that are not a sequence of complete envelopes are an error (exit
status 1), after the envelopes before them are printed.`

// inspectRecord is one line of the output of inspect.
type inspectRecord struct {
	Index            int    `json:"index"`
	Offset           int64  `json:"offset"`
	Version          int    `json:"version"`
	Size             int    `json:"size"`
	BodyLength       int    `json:"bodyLength"`
	WrappedKeyLength int    `json:"wrappedKeyLength"`
	Salt             string `json:"salt"`
	KMSKeyID         string `json:"kmsKeyId"`
	WrappedKeyFormat string `json:"wrappedKeyFormat"`
}

func cmdInspect(ctx context.Context, c *cli, args []string) error {
	fs := newFlagSet(c, inspectSynopsis, inspectDescription)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	in, closeIn, err := openInput(c, pos)
	if err != nil {
		return err
	}
	defer closeIn()
	er := envelope.NewReader(in)
	enc := newRecordWriter(c.stdout).enc
	for i := 0; ; i++ {
		e, off, err := er.Next()
		if err == io.EOF {
			if i == 0 {
				return errors.New("empty input: no envelope")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		id, format := wrappedKeyID(e.WrappedKey)
		if err := enc.Encode(&inspectRecord{
			Index:            i,
			Offset:           off,
			Version:          envelope.Version,
			Size:             e.Size(),
			BodyLength:       len(e.Body),
			WrappedKeyLength: len(e.WrappedKey),
			Salt:             hex.EncodeToString(e.Salt),
			KMSKeyID:         id,
			WrappedKeyFormat: format,
		}); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
	}
}

// wrappedKeyID returns the KMS key that a CiphertextBlob names in clear, and
// the blob format that names it:
//
//   - kmstest: version byte 1, then the key ID as a 36-character UUID;
//   - moto: the key ID as a 36-character UUID, then nonce, tag, ciphertext;
//   - local-kms: a length byte, then the key ARN;
//   - text: a key ARN or UUID in clear within the first 128 bytes.
//
// AWS KMS blobs carry an opaque reference to the key (the HBK identifier of
// its backing key), not its ID: for them, and anything else, it returns
// "unknown", "unknown". The blob is not authenticated, so neither is the
// result: it says which key to ask, not which key made the blob.
func wrappedKeyID(blob []byte) (id, format string) {
	switch {
	case len(blob) >= 37 && blob[0] == 1 && isUUID(blob[1:37]):
		return string(blob[1:37]), "kmstest"
	case len(blob) >= 36 && isUUID(blob[:36]):
		return string(blob[:36]), "moto"
	case len(blob) >= 2 && int(blob[0]) <= len(blob)-1 && isKeyARN(blob[1:1+int(blob[0])]):
		return string(blob[1 : 1+int(blob[0])]), "local-kms"
	}
	head := blob[:min(len(blob), 128)]
	if i := bytes.Index(head, []byte("arn:")); i >= 0 {
		for j := i + 1; j <= len(head); j++ {
			if isKeyARN(head[i:j]) && (j == len(head) || !isARNByte(head[j])) {
				return string(head[i:j]), "text"
			}
		}
	}
	for i := 0; i+36 <= len(head); i++ {
		if isUUID(head[i : i+36]) {
			return string(head[i : i+36]), "text"
		}
	}
	return "unknown", "unknown"
}

// isUUID reports whether b is a UUID in its 36-character text form, in
// lower case as KMS key IDs are.
func isUUID(b []byte) bool {
	if len(b) != 36 {
		return false
	}
	for i, c := range b {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		default:
			return false
		}
	}
	return true
}

// isKeyARN reports whether b is a KMS key ARN:
// arn:PARTITION:kms:REGION:ACCOUNT:key/UUID.
func isKeyARN(b []byte) bool {
	if !bytes.HasPrefix(b, []byte("arn:")) || len(b) < 4+36 {
		return false
	}
	i := bytes.Index(b, []byte(":key/"))
	if i < 0 || !bytes.Contains(b[:i], []byte(":kms:")) || !isUUID(b[i+5:]) {
		return false
	}
	for _, c := range b {
		if !isARNByte(c) {
			return false
		}
	}
	return true
}

func isARNByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == ':' || c == '/' || c == '-' || c == '_'
}
