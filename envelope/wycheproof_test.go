package envelope_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
)

// The Wycheproof files in testdata/wycheproof are unmodified copies from
// C2SP/wycheproof (Apache License 2.0, see the LICENSE there).

// hexBytes is a hex string of a Wycheproof file, decoded.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type wycheproofGCM struct {
	NumberOfTests int `json:"numberOfTests"`
	TestGroups    []struct {
		IVSize  int `json:"ivSize"`
		KeySize int `json:"keySize"`
		TagSize int `json:"tagSize"`
		Tests   []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Flags   []string `json:"flags"`
			Key     hexBytes `json:"key"`
			IV      hexBytes `json:"iv"`
			AAD     hexBytes `json:"aad"`
			Msg     hexBytes `json:"msg"`
			CT      hexBytes `json:"ct"`
			Tag     hexBytes `json:"tag"`
			Result  string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

type wycheproofHKDF struct {
	NumberOfTests int `json:"numberOfTests"`
	TestGroups    []struct {
		Tests []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Flags   []string `json:"flags"`
			IKM     hexBytes `json:"ikm"`
			Salt    hexBytes `json:"salt"`
			Info    hexBytes `json:"info"`
			Size    int      `json:"size"`
			OKM     hexBytes `json:"okm"`
			Result  string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

// TestWycheproofAESGCM runs the Wycheproof AES-GCM vectors with the
// parameters of the envelope (256-bit key, 96-bit nonce, 128-bit tag)
// through the two ways Seal and Open use AES-GCM:
//
//   - cipher.NewGCMWithRandomNonce (FIPS 140-3 mode), whose Open takes
//     nonce || ciphertext || tag;
//   - cipher.NewGCM with an explicit nonce (otherwise), for Seal and Open.
//     GODEBUG=fips140=only refuses this constructor, and the package does
//     not use it then; it is tested there too, without enforcement.
//
// A valid vector must open to its message (and, with an explicit nonce,
// seal to its ciphertext and tag); an invalid one must fail with a nil
// result, without a panic.
func TestWycheproofAESGCM(t *testing.T) {
	var f wycheproofGCM
	readJSON(t, "testdata/wycheproof/aes_gcm_test.json", &f)
	var valid, invalid, other, total int
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			total++
			if g.KeySize != 256 || g.IVSize != 96 || g.TagSize != 128 {
				other++
				continue
			}
			require.Contains(t, []string{"valid", "invalid"}, tc.Result, "tcId %d", tc.TcID)
			ok := tc.Result == "valid"
			if ok {
				valid++
			} else {
				invalid++
			}
			block, err := aes.NewCipher(tc.Key)
			require.NoError(t, err)

			// Random-nonce GCM: Open only (Seal draws its own nonce).
			rn, err := cipher.NewGCMWithRandomNonce(block)
			require.NoError(t, err)
			in := append(append(append([]byte(nil), tc.IV...), tc.CT...), tc.Tag...)
			out, err := rn.Open(nil, nil, in, tc.AAD)
			if ok {
				require.NoError(t, err, "tcId %d", tc.TcID)
				require.Equal(t, hex.EncodeToString(tc.Msg), hex.EncodeToString(out), "tcId %d", tc.TcID)
			} else {
				require.Error(t, err, "tcId %d (%s %v)", tc.TcID, tc.Comment, tc.Flags)
				require.Nil(t, out, "tcId %d", tc.TcID)
			}

			// Explicit-nonce GCM: Seal and Open.
			fips140.WithoutEnforcement(func() {
				g, err := cipher.NewGCM(block)
				require.NoError(t, err)
				ct := append(append([]byte(nil), tc.CT...), tc.Tag...)
				out, err := g.Open(nil, tc.IV, ct, tc.AAD)
				if ok {
					require.NoError(t, err, "tcId %d", tc.TcID)
					require.Equal(t, hex.EncodeToString(tc.Msg), hex.EncodeToString(out), "tcId %d", tc.TcID)
					sealed := g.Seal(nil, tc.IV, tc.Msg, tc.AAD)
					require.Equal(t, hex.EncodeToString(ct), hex.EncodeToString(sealed), "tcId %d", tc.TcID)
				} else {
					require.Error(t, err, "tcId %d", tc.TcID)
					require.Nil(t, out, "tcId %d", tc.TcID)
				}
			})
		}
	}
	require.Equal(t, f.NumberOfTests, total)
	t.Logf("AES-GCM: %d of %d Wycheproof vectors have the envelope's parameters: %d valid, %d invalid, each through 2 GCM paths; %d with other key or nonce sizes skipped",
		valid+invalid, total, valid, invalid, other)
	require.Positive(t, valid)
	require.Positive(t, invalid)
}

// TestWycheproofHKDF runs every Wycheproof HKDF-SHA256 vector through the
// hand-optimised HKDF-Expand of Key.expand (precomputed HMAC states, resumed
// per block), with the PRK from crypto/hkdf.Extract. Key.expand writes the
// fixed label "ksse v1 record key" before the salt; envelope.ExpandInfo
// passes an empty label so that the vector's info goes through the same
// code.
// It also checks crypto/hkdf.Key, which NewKey uses for the stream key.
//
// Invalid vectors ask for more than 255 blocks: crypto/hkdf must refuse
// them. The hand path is never asked for more than one block (Seal and
// Open derive 32 bytes) and has no such check, so it is not run on them.
func TestWycheproofHKDF(t *testing.T) {
	t.Parallel()
	var f wycheproofHKDF
	readJSON(t, "testdata/wycheproof/hkdf_sha256_test.json", &f)
	var valid, invalid, total, maxSize int
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			total++
			if tc.Result != "valid" {
				require.Equal(t, "invalid", tc.Result)
				invalid++
				_, err := hkdf.Key(sha256.New, tc.IKM, tc.Salt, string(tc.Info), tc.Size)
				require.Error(t, err, "tcId %d: size %d", tc.TcID, tc.Size)
				continue
			}
			valid++
			maxSize = max(maxSize, tc.Size)
			prk, err := hkdf.Extract(sha256.New, tc.IKM, tc.Salt)
			require.NoError(t, err)
			got, err := envelope.ExpandInfo(prk, tc.Info, tc.Size)
			require.NoError(t, err)
			require.Equal(t, hex.EncodeToString(tc.OKM), hex.EncodeToString(got), "tcId %d (%s)", tc.TcID, tc.Comment)

			std, err := hkdf.Key(sha256.New, tc.IKM, tc.Salt, string(tc.Info), tc.Size)
			require.NoError(t, err)
			require.Equal(t, hex.EncodeToString(tc.OKM), hex.EncodeToString(std), "tcId %d", tc.TcID)
		}
	}
	require.Equal(t, f.NumberOfTests, total)
	require.Equal(t, 255*sha256.Size, maxSize, "the vectors reach the largest output")
	t.Logf("HKDF-SHA256: %d Wycheproof vectors: %d valid through the hand-optimised Expand and crypto/hkdf (outputs up to %d bytes), %d invalid refused by crypto/hkdf",
		total, valid, maxSize, invalid)
}

// TestExpandRecordKeyMatchesHKDF compares the hand-optimised Expand, with the
// real label, against crypto/hkdf.Expand for random PRKs and salts: every
// output length from 1 to 64 bytes, then lengths spread up to 255 blocks,
// and salts of 0 to 64 bytes (envelopes use 16).
func TestExpandRecordKeyMatchesHKDF(t *testing.T) {
	lengths := []int{255 * sha256.Size, 255*sha256.Size - 1}
	for n := 1; n <= 64; n++ {
		lengths = append(lengths, n)
	}
	step := 97
	if testing.Short() {
		step = 997
	}
	for n := 65; n < 255*sha256.Size; n += step {
		lengths = append(lengths, n)
	}
	for i, n := range lengths {
		prk := make([]byte, sha256.Size)
		rand.Read(prk)
		salt := make([]byte, i%65)
		rand.Read(salt)
		got, err := envelope.ExpandRecordKey(prk, salt, n)
		require.NoError(t, err)
		want, err := hkdf.Expand(sha256.New, prk, "ksse v1 record key"+string(salt), n)
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "length %d, salt %x", n, salt)
	}
	t.Logf("%d random PRK/salt/length cases", len(lengths))
}

// TestPartitionKeyStreamMatchesCTR compares the partition key stream
// (FORMAT.md: AES-256-CTR with counter blocks FF×12 || i from i = 0), block
// by block and with cipher.NewCTR (FIPS mode), with crypto/cipher's CTR
// mode, for every length up to the largest sealed partition key.
func TestPartitionKeyStreamMatchesCTR(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	iv := append(bytes.Repeat([]byte{0xff}, 12), 0, 0, 0, 0)
	cases := 0
	for _, fips := range []bool{false, true} {
		for n := 0; n <= 2+envelope.MaxPartitionKeySize; n++ {
			buf := make([]byte, n)
			rand.Read(buf)
			got := bytes.Clone(buf)
			envelope.XORPartitionKeyStream(key, got, fips)
			want := bytes.Clone(buf)
			cipher.NewCTR(block, iv).XORKeyStream(want, want)
			require.Equal(t, want, got, "fips %v, %d bytes", fips, n)
			cases++
		}
	}
	require.Panics(t, func() { envelope.XORPartitionKeyStream(key, make([]byte, 3+envelope.MaxPartitionKeySize), false) })
	t.Logf("%d partition key stream cases", cases)
}
