delete globalThis.fetch; // the emscripten loader of virgil-crypto breaks on Node >= 18 when fetch exists

// Prints fresh Virgil application credentials as JSON (for stub_cards_server.js / e3kit_cards.js tests):
//   {"app_id": 32 hex, "api_key_id": 32 hex, "api_private_key": base64 PKCS#8 DER Ed25519,
//    "api_public_key": base64 SPKI DER Ed25519}
//
//   node interop/make_app_credentials.js > creds.json

const nodeCrypto = require('crypto');

(async () => {
  const vc = require(require.resolve('virgil-crypto', { paths: [__dirname] }));
  await vc.initCrypto();
  const crypto = new vc.VirgilCrypto();
  const { privateKey, publicKey } = crypto.generateKeys(vc.KeyPairType.ED25519);
  const creds = {
    app_id: nodeCrypto.randomBytes(16).toString('hex'),
    api_key_id: nodeCrypto.randomBytes(16).toString('hex'),
    api_private_key: crypto.exportPrivateKey(privateKey).toString('base64'),
    api_public_key: crypto.exportPublicKey(publicKey).toString('base64'),
  };
  process.stdout.write(`${JSON.stringify(creds, null, 2)}\n`);
})().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
