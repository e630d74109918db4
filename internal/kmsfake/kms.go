package kmsfake

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// The account and region of every key. They appear in key and alias ARNs.
const (
	Region    = "us-east-1"
	AccountID = "111122223333"
)

// Default and allowed waiting periods of ScheduleKeyDeletion, in days.
const (
	minPendingDays     = 7
	maxPendingDays     = 30
	defaultPendingDays = 30
)

// KMS is an in-memory AWS KMS. Create one with [New].
//
// Its methods GenerateDataKey, Decrypt, Encrypt and DescribeKey are KMS
// operations with the signatures of *kms.Client; the other methods
// administer the KMS. A KMS is safe for concurrent use.
type KMS struct {
	region         string
	keyARNPrefix   string // arn:aws:kms:REGION:ACCOUNT:key/
	aliasARNPrefix string // arn:aws:kms:REGION:ACCOUNT:

	mu      sync.Mutex
	keys    map[string]*key   // by key ID; deleted keys stay as tombstones
	order   []string          // key IDs in creation order, for ListKeys
	aliases map[string]string // alias name ("alias/x") → key ID

	faults  []*injectedFault
	faultFn func(op string) *Fault
	latency time.Duration

	calls map[string]int64 // by operation; "" is the total
}

type key struct {
	id, arn     string
	spec        types.KeySpec
	usage       types.KeyUsageType
	state       types.KeyState
	description string
	created     time.Time
	deletion    time.Time // when state is PendingDeletion
	pendingDays int32     // when state is PendingDeletion
	deleted     bool      // tombstone: the key no longer exists

	aead        cipher.AEAD // nil unless spec is SYMMETRIC_DEFAULT
	multiRegion bool        // a multi-Region key ("mrk-" key ID)

	denyAll bool
	deny    map[string]bool // operations denied on this key
}

// New returns an empty KMS of [Region]: no keys, no aliases, no faults, no
// latency.
func New() *KMS { return NewInRegion(Region) }

// NewInRegion returns an empty KMS of another region, for replicas of
// multi-Region keys (see [KMS.ReplicateKey]).
func NewInRegion(region string) *KMS {
	return &KMS{
		region:         region,
		keyARNPrefix:   "arn:aws:kms:" + region + ":" + AccountID + ":key/",
		aliasARNPrefix: "arn:aws:kms:" + region + ":" + AccountID + ":",
		keys:           make(map[string]*key),
		aliases:        make(map[string]string),
		calls:          make(map[string]int64),
	}
}

// CreateMultiRegionKey creates a symmetric multi-Region primary key, whose
// key ID starts with "mrk-", and returns its key ID and key ARN.
func (k *KMS) CreateMultiRegionKey() (keyID, arn string) {
	md := k.createKey(types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt, "", "mrk-"+strings.ReplaceAll(newUUID(), "-", ""))
	return *md.KeyId, *md.Arn
}

// ReplicateKey creates in the KMS of another region to a replica of the
// multi-Region key keyID: the same key ID and key material, its own ARN
// (which it returns), state and access. Each decrypts what the other
// encrypted, and names itself in DecryptOutput.KeyId, as KMS does.
func (k *KMS) ReplicateKey(keyID string, to *KMS) (string, error) {
	k.mu.Lock()
	ky, err := k.resolveLocked(keyID)
	if err == nil && !ky.multiRegion {
		err = newError(codeValidation, "%s is not a multi-Region key", ky.arn)
	}
	if err == nil && to.region == k.region {
		err = validationError("the replica region must differ from %s", k.region)
	}
	if err != nil {
		k.mu.Unlock()
		return "", sdkError(err)
	}
	r := &key{id: ky.id, arn: to.keyARNPrefix + ky.id, spec: ky.spec, usage: ky.usage, state: types.KeyStateEnabled,
		created: time.Now().UTC(), aead: ky.aead, multiRegion: true}
	k.mu.Unlock()
	to.mu.Lock()
	defer to.mu.Unlock()
	if _, ok := to.keys[r.id]; ok {
		return "", sdkError(newError(codeAlreadyExists, "%s already exists", r.arn))
	}
	to.keys[r.id] = r
	to.order = append(to.order, r.id)
	return r.arn, nil
}

// CreateKey creates a key of the given spec in the Enabled state and returns
// its key ID and key ARN. An empty spec means SYMMETRIC_DEFAULT, the only
// spec whose keys can wrap data keys; keys of other specs are metadata only
// (see the package documentation) and get the key usage KMS defaults to:
// ENCRYPT_DECRYPT for RSA, GENERATE_VERIFY_MAC for HMAC,
// ENCAPSULATE_DECAPSULATE for ML-KEM and SIGN_VERIFY for the others. CreateKey panics if spec is not a key spec of the KMS API.
func (k *KMS) CreateKey(spec types.KeySpec) (keyID, arn string) {
	if spec == "" {
		spec = types.KeySpecSymmetricDefault
	}
	usages, ok := keyUsages(spec)
	if !ok {
		panic(fmt.Sprintf("kmsfake: CreateKey: unknown key spec %q", spec))
	}
	md := k.createKey(spec, usages[0], "", newUUID())
	return *md.KeyId, *md.Arn
}

// keyUsages returns the key usages allowed for spec, the default first.
func keyUsages(spec types.KeySpec) ([]types.KeyUsageType, bool) {
	if !slices.Contains(spec.Values(), spec) {
		return nil, false
	}
	s := string(spec)
	switch {
	case spec == types.KeySpecSymmetricDefault:
		return []types.KeyUsageType{types.KeyUsageTypeEncryptDecrypt}, true
	case strings.HasPrefix(s, "RSA_"):
		return []types.KeyUsageType{types.KeyUsageTypeEncryptDecrypt, types.KeyUsageTypeSignVerify}, true
	case strings.HasPrefix(s, "HMAC_"):
		return []types.KeyUsageType{types.KeyUsageTypeGenerateVerifyMac}, true
	case strings.HasPrefix(s, "ML_KEM_"):
		return []types.KeyUsageType{types.KeyUsageTypeEncapsulateDecapsulate}, true
	case s == "SM2":
		return []types.KeyUsageType{types.KeyUsageTypeSignVerify, types.KeyUsageTypeEncryptDecrypt, types.KeyUsageTypeKeyAgreement}, true
	case strings.HasPrefix(s, "ECC_NIST_P"):
		return []types.KeyUsageType{types.KeyUsageTypeSignVerify, types.KeyUsageTypeKeyAgreement}, true
	default:
		return []types.KeyUsageType{types.KeyUsageTypeSignVerify}, true
	}
}

func (k *KMS) createKey(spec types.KeySpec, usage types.KeyUsageType, description, id string) *types.KeyMetadata {
	ky := &key{
		id:          id,
		arn:         k.keyARNPrefix + id,
		multiRegion: strings.HasPrefix(id, "mrk-"),
		spec:        spec,
		usage:       usage,
		state:       types.KeyStateEnabled,
		description: description,
		created:     time.Now().UTC(),
	}
	if spec == types.KeySpecSymmetricDefault {
		secret := make([]byte, 32)
		rand.Read(secret)
		block, err := aes.NewCipher(secret)
		if err != nil {
			panic("kmsfake: " + err.Error())
		}
		ky.aead, err = cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			panic("kmsfake: " + err.Error())
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[id] = ky
	k.order = append(k.order, id)
	return ky.metadata()
}

// CreateAlias creates the alias name (which must start with "alias/") for
// the key keyID, as the CreateAlias operation does. It fails with
// AlreadyExistsException if the alias exists, InvalidAliasNameException if
// the name is malformed or starts with "alias/aws/", NotFoundException if
// the key does not exist and KMSInvalidStateException if it is pending
// deletion. An alias is deleted with its key.
func (k *KMS) CreateAlias(name, keyID string) error {
	return sdkError(k.createAlias("", name, keyID))
}

// SetKeyState puts the key keyID into any key state, such as Disabled,
// PendingDeletion, Unavailable or PendingImport, to test how code copes
// with it. It fails with NotFoundException if the key does not exist and
// ValidationException if state is not a key state of the KMS API. A key
// put into PendingDeletion is deleted after 30 days, which is to say never
// in a test; use [KMS.DeleteKey] to delete it.
func (k *KMS) SetKeyState(keyID string, state types.KeyState) error {
	if !slices.Contains(state.Values(), state) {
		return sdkError(validationError("kmsfake: unknown key state %q", state))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ky, err := k.resolveLocked(keyID)
	if err != nil {
		return sdkError(err)
	}
	ky.state = state
	ky.deletion, ky.pendingDays = time.Time{}, 0
	if state == types.KeyStatePendingDeletion {
		ky.pendingDays = defaultPendingDays
		ky.deletion = time.Now().UTC().AddDate(0, 0, defaultPendingDays)
	}
	return nil
}

// DeleteKey deletes the key keyID and its aliases at once, as KMS does when
// the waiting period of ScheduleKeyDeletion ends, whatever the key's state.
// From then on the key is not found: operations that name it, and Decrypt
// of its ciphertexts, fail with NotFoundException. DeleteKey fails with
// NotFoundException if the key does not exist.
func (k *KMS) DeleteKey(keyID string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	ky, err := k.resolveLocked(keyID)
	if err != nil {
		return sdkError(err)
	}
	ky.deleted = true
	ky.aead = nil
	for name, id := range k.aliases {
		if id == ky.id {
			delete(k.aliases, name)
		}
	}
	return nil
}

// DenyAccess makes the given operations on the key keyID fail with
// AccessDeniedException, as if a key policy denied them; with no ops it
// denies every operation on the key. For Decrypt, the key is the one that
// made the ciphertext. Denials add up until [KMS.AllowAccess]. DenyAccess
// fails with NotFoundException if the key does not exist, and panics if an
// op is not an operation that names a key.
func (k *KMS) DenyAccess(keyID string, ops ...string) error {
	for _, op := range ops {
		if !keyOperations[op] {
			panic(fmt.Sprintf("kmsfake: DenyAccess: %q is not an operation on a key", op))
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ky, err := k.resolveLocked(keyID)
	if err != nil {
		return sdkError(err)
	}
	if len(ops) == 0 {
		ky.denyAll = true
		return nil
	}
	if ky.deny == nil {
		ky.deny = make(map[string]bool)
	}
	for _, op := range ops {
		ky.deny[op] = true
	}
	return nil
}

// AllowAccess lifts every denial of [KMS.DenyAccess] on the key keyID. It
// fails with NotFoundException if the key does not exist.
func (k *KMS) AllowAccess(keyID string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	ky, err := k.resolveLocked(keyID)
	if err != nil {
		return sdkError(err)
	}
	ky.denyAll, ky.deny = false, nil
	return nil
}

// SetLatency makes every later GenerateDataKey, Encrypt and Decrypt call
// wait d before doing its work, to simulate the round trip to KMS. A call
// whose ctx is done while it waits returns the ctx error (over HTTP, the
// server stops waiting when the client gives up). Zero, the default,
// removes the latency.
func (k *KMS) SetLatency(d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.latency = d
}

// Calls returns the number of calls of the operation op so far, in process
// and over HTTP, whether they succeeded or failed. Calls("") returns the
// total of all operations, including requests for operations that the
// server does not support. Calls panics if op is not an operation of this
// package (see the package documentation), to catch typos. Calls that a
// *kms.Client does not send, because their ctx is already done or a
// required member such as KeyId is missing, are not counted, in process
// either.
func (k *KMS) Calls(op string) int64 {
	if op != "" && !operations[op] {
		panic(fmt.Sprintf("kmsfake: Calls: unknown operation %q", op))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls[op]
}

// count records a call of op; op is counted only in the total if it is not
// an operation of this package.
func (k *KMS) count(op string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls[""]++
	if operations[op] {
		k.calls[op]++
	}
}

// operations are the operations that KMS and Server support.
var operations = map[string]bool{
	"CancelKeyDeletion":   true,
	"CreateAlias":         true,
	"CreateKey":           true,
	"Decrypt":             true,
	"DescribeKey":         true,
	"DisableKey":          true,
	"EnableKey":           true,
	"Encrypt":             true,
	"GenerateDataKey":     true,
	"ListKeys":            true,
	"ScheduleKeyDeletion": true,
}

// keyOperations are the operations that name a key, and can be denied.
var keyOperations = map[string]bool{
	"CancelKeyDeletion":   true,
	"CreateAlias":         true,
	"Decrypt":             true,
	"DescribeKey":         true,
	"DisableKey":          true,
	"EnableKey":           true,
	"Encrypt":             true,
	"GenerateDataKey":     true,
	"ScheduleKeyDeletion": true,
}

// resolveLocked returns the key named by id: a key ID, key ARN, alias name
// or alias ARN. Deleted keys are not found. k.mu must be held.
func (k *KMS) resolveLocked(id string) (*key, *apiError) {
	if id == "" {
		return nil, validationError("1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	keyID := id
	if k.isAlias(id) {
		name := strings.TrimPrefix(id, k.aliasARNPrefix)
		var ok bool
		if keyID, ok = k.aliases[name]; !ok {
			return nil, newError(codeNotFound, "Alias %s%s is not found.", k.aliasARNPrefix, name)
		}
	} else if rest, ok := strings.CutPrefix(id, k.keyARNPrefix); ok {
		keyID = rest
	} else if strings.HasPrefix(id, "arn:") {
		return nil, newError(codeNotFound, "Invalid arn %s", id)
	}
	ky, ok := k.keys[keyID]
	if !ok || ky.deleted {
		return nil, newError(codeNotFound, "Key '%s%s' does not exist", k.keyARNPrefix, keyID)
	}
	return ky, nil
}

// isAlias reports whether id is an alias name or alias ARN.
func (k *KMS) isAlias(id string) bool {
	return strings.HasPrefix(strings.TrimPrefix(id, k.aliasARNPrefix), "alias/")
}

// useLocked resolves id for the operation op, checking that op is not
// denied. k.mu must be held.
func (k *KMS) useLocked(op, id string) (*key, *apiError) {
	ky, err := k.resolveLocked(id)
	if err != nil {
		return nil, err
	}
	if err := ky.checkAccess(op); err != nil {
		return nil, err
	}
	return ky, nil
}

func (ky *key) checkAccess(op string) *apiError {
	if op != "" && (ky.denyAll || ky.deny[op]) {
		return newError(codeAccessDenied,
			"User: arn:aws:iam::%s:user/kmstest is not authorized to perform: kms:%s on resource: %s because no resource-based policy allows the kms:%s action",
			AccountID, op, ky.arn, op)
	}
	return nil
}

// checkCrypto checks that the key can be used for a cryptographic
// operation with the encryption algorithm alg ("" for the default): it is
// Enabled and symmetric, and alg is SYMMETRIC_DEFAULT.
func (ky *key) checkCrypto(alg types.EncryptionAlgorithmSpec) *apiError {
	switch ky.state {
	case types.KeyStateEnabled:
	case types.KeyStateDisabled:
		return newError(codeDisabled, "%s is disabled.", ky.arn)
	case types.KeyStatePendingDeletion:
		return newError(codeInvalidState, "%s is pending deletion.", ky.arn)
	default:
		return newError(codeInvalidState, "%s is %s.", ky.arn, ky.state)
	}
	if ky.aead == nil {
		return newError(codeInvalidKeyUsage, "%s key usage is %s and key spec is %s, which cannot be used for this operation.", ky.arn, ky.usage, ky.spec)
	}
	if alg != "" && alg != types.EncryptionAlgorithmSpecSymmetricDefault {
		if !slices.Contains(alg.Values(), alg) {
			return validationError("1 validation error detected: Value '%s' at 'encryptionAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: %v", alg, alg.Values())
		}
		return newError(codeInvalidKeyUsage, "%s does not support the encryption algorithm %s.", ky.arn, alg)
	}
	return nil
}

func (ky *key) metadata() *types.KeyMetadata {
	md := &types.KeyMetadata{
		AWSAccountId:          ptr(AccountID),
		Arn:                   ptr(ky.arn),
		KeyId:                 ptr(ky.id),
		CreationDate:          ptr(ky.created),
		Description:           ptr(ky.description),
		Enabled:               ky.state == types.KeyStateEnabled,
		KeyState:              ky.state,
		KeyUsage:              ky.usage,
		KeySpec:               ky.spec,
		CustomerMasterKeySpec: types.CustomerMasterKeySpec(ky.spec),
		KeyManager:            types.KeyManagerTypeCustomer,
		Origin:                types.OriginTypeAwsKms,
		MultiRegion:           ptr(ky.multiRegion),
	}
	if ky.state == types.KeyStatePendingDeletion {
		md.DeletionDate = ptr(ky.deletion)
		md.PendingDeletionWindowInDays = ptr(ky.pendingDays)
	}
	if ky.usage == types.KeyUsageTypeEncryptDecrypt {
		switch ky.spec {
		case types.KeySpecSymmetricDefault:
			md.EncryptionAlgorithms = []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSymmetricDefault}
		case types.KeySpecSm2:
			md.EncryptionAlgorithms = []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSm2pke}
		default:
			md.EncryptionAlgorithms = []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecRsaesOaepSha1, types.EncryptionAlgorithmSpecRsaesOaepSha256}
		}
	}
	return md
}

func ptr[T any](v T) *T { return &v }

// newUUID returns a random (version 4) UUID, the form of KMS key IDs.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Region returns the region of k ([Region] for a KMS from [New]), as a
// *kms.Client's Options().Region does.
func (k *KMS) Region() string { return k.region }
