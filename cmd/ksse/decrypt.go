package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/streamid"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/record"
)

const decryptSynopsis = "--stream S (--key-arn ARN... | --any-key) [--firehose] [FILE]"

const decryptDescription = `
Decrypts FILE (or standard input, also as "-"): envelopes written one after
the other, as Firehose delivers records to an S3 object, or the Data of a
single Kinesis record. S is the Kinesis data stream (or, with --firehose, the
Firehose delivery stream) that the records were written to: it is
authenticated with every record, so a record decrypts only for its own
stream.

Prints one JSON object per record on standard output:

  {"index":0,"partitionKey":"…","data":"…","encryptionType":"KMS"}

index is the record's position in the input, from 0; Firehose records have no
partition key. data is the payload as text if it is valid UTF-8, and
otherwise base64 with "dataEncoding":"base64".

A record that fails to authenticate is not printed, not even in part: it is
reported on standard error with its index and byte offset, the next records
are decrypted, and the exit status is 1. When no record authenticates, the
summary names the two causes: the records were written to another stream
than S, or they were tampered with or are not ksse records. A record whose
data key is of a key not trusted is reported as such. Bytes that do not form
a complete envelope (a truncated record, trailing data, a plaintext record),
and an empty input, are an error with exit status 1.
` + keyFlagsHelp

func cmdDecrypt(ctx context.Context, c *cli, args []string) error {
	fs := newFlagSet(c, decryptSynopsis, decryptDescription)
	stream := fs.String("stream", "", "stream the records were written to: Kinesis data stream name or ARN, or with --firehose delivery stream (required)")
	firehose := fs.Bool("firehose", false, "S is a Firehose delivery stream")
	var kf keyFlags
	kf.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *stream == "" {
		return usagef("--stream is required: records are authenticated with the stream they were written to")
	}
	parse, kind := streamid.Kinesis, "Kinesis stream"
	if *firehose {
		parse, kind = streamid.Firehose, "Firehose delivery stream"
	}
	if _, err := parse(*stream); err != nil {
		return usagef("--stream %q: not a valid %s name or ARN", *stream, kind)
	}
	if err := kf.check(); err != nil {
		return err
	}
	in, closeIn, err := openInput(c, pos)
	if err != nil {
		return err
	}
	defer closeIn()

	dec, _, keyARNs, err := kf.newDecryptor(ctx, c, false)
	if err != nil {
		return err
	}
	defer dec.Close()

	decrypt := dec.DecryptAppend
	if *firehose {
		decrypt = dec.DecryptFirehose
	}
	n, failed, unauthentic, err := decryptAll(ctx, func(ctx context.Context, dst, data []byte) ([]byte, record.Decrypted, error) {
		return decrypt(ctx, dst, *stream, data)
	}, in, keyARNs, newRecordWriter(c.stdout), c.warnf)
	if err != nil {
		c.warnf("%v", err)
		return errReported
	}
	if n == 0 {
		return errors.New("empty input: no envelope")
	}
	if failed > 0 {
		var hint string
		if unauthentic == n {
			// Not one record authentic: the wrong --stream, or not
			// records of this stream at all.
			kind := "stream"
			if *firehose {
				kind = "delivery stream"
			}
			hint = fmt.Sprintf(" (none authenticates for %s %s: either they were written to another stream, whose name is authenticated, or they were tampered with or are not ksse records)", kind, *stream)
		}
		c.warnf("%d of %d records failed to decrypt%s", failed, n, hint)
		return errReported
	}
	return nil
}

// decryptAll decrypts the envelopes of r with decrypt, prints the authentic ones to out
// and reports the others with warnf (explained by explainKeyError for the
// --key-arn keys keyARNs). It returns the number of envelopes, of
// failures and of failures to authenticate (envelope.ErrOpen) among them, and
// an error when r cannot be split (or read, or written) to its end.
func decryptAll(ctx context.Context, decrypt func(ctx context.Context, dst, data []byte) ([]byte, record.Decrypted, error), r io.Reader, keyARNs []string, out *recordWriter, warnf func(string, ...any)) (n, failed, unauthentic int, err error) {
	er := envelope.NewReader(r)
	var buf []byte
	for ; ; n++ {
		e, off, err := er.Next()
		if err == io.EOF {
			return n, failed, unauthentic, nil
		}
		if err != nil {
			if errors.Is(err, envelope.ErrMalformed) {
				return n, failed, unauthentic, fmt.Errorf("record %d: %w", n, err)
			}
			return n, failed, unauthentic, fmt.Errorf("reading input: %w", err)
		}
		var d record.Decrypted
		buf, d, err = decrypt(ctx, buf[:0], er.Bytes())
		if err != nil {
			failed++
			if errors.Is(err, envelope.ErrOpen) {
				unauthentic++
			}
			warnf("record %d (byte %d, %d bytes) failed to decrypt: %v", n, off, e.Size(), explainKeyError(err, keyARNs))
			continue
		}
		idx := n
		jr := jsonRecord{Index: &idx, PartitionKey: d.PartitionKey, EncryptionType: "KMS"}
		jr.setData(d.Data)
		if err := out.write(&jr); err != nil {
			return n, failed, unauthentic, fmt.Errorf("writing output: %w", err)
		}
	}
}

// explainKeyError returns err, the failure of a record read with the
// --key-arn keys keyARNs (strict mode), with what the keys have to do with
// it:
//
//   - keycache.ErrNotAllowed: the record's data key is of another key. The
//     decryptor says so when KMS names another key than those allowed, and
//     when KMS, given the one allowed key as KeyId, answers
//     IncorrectKeyException (AWS KMS, kmstest);
//   - with one key, sent to KMS as the KeyId of Decrypt, KMS may instead
//     answer NotFoundException (the key does not exist: a typo, another
//     account or region) or AccessDeniedException (moto, for a blob of
//     another key; or credentials that may not use the key). Only KMS's
//     error says which; the message names the key it was asked for.
//
// Other errors are returned as they are.
func explainKeyError(err error, keyARNs []string) error {
	switch {
	case len(keyARNs) == 0:
		return err
	case errors.Is(err, keycache.ErrNotAllowed):
		return fmt.Errorf("its data key is not of a --key-arn key: %w", err)
	case errors.Is(err, kmsiface.ErrKeyNotFound):
		return fmt.Errorf("KMS does not find a --key-arn key: %w", err)
	case errors.Is(err, kmsiface.ErrAccessDenied):
		return fmt.Errorf("KMS refused to use a --key-arn key (may these credentials decrypt with it?): %w", err)
	}
	return err
}
