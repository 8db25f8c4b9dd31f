"""The e-mail connector: chat over IMAP/SMTP, compatible with Delta Chat (DESIGN §9).

``openpgp`` (keys, encrypt/sign, decrypt/verify, Secure-Join password messages),
``autocrypt`` (headers, peer state, the encryption recommendation) and
``pgpmime`` (RFC 3156 ``multipart/encrypted`` with RFC 9788 header protection)
are pure: no network, no storage.
"""
