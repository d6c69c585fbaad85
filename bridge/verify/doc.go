// Package verify authenticates inbound webhooks before hookgate stores them.
//
// Each provider signs its deliveries differently: which headers carry the
// signature, which bytes are signed, which hash and encoding are used, and
// whether a timestamp limits replays. Verify hides those differences behind
// one call that takes a scheme name, the configured secrets, the raw request
// and the verifier's clock, and reports the provider's event type and
// delivery ID for deduplication.
//
// Verification always runs on the raw body, byte for byte as received;
// the body is read as JSON or form data only after a signature has matched,
// and only to fill the Result. The clock is an argument so that tests and
// replays are deterministic, and a list of secrets is accepted everywhere
// so that a secret can be rotated without refusing deliveries signed with
// the old one.
package verify
