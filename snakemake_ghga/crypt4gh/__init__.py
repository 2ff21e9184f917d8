"""Crypt4GH for GHGA: the one module callers import for keys-free crypto work.

A facade over `c4gh` (format, header, segment ciphers), `encryption` (one-pass
encryption with per-part checksums) and `decryption` (whole-file decryption).
"""

from snakemake_ghga.crypt4gh.decrypt import decrypt_file
from snakemake_ghga.crypt4gh.encrypt import (
    EncryptedPart,
    EncryptionResult,
    encrypt_file,
    encrypted_temp_file,
    multipart_etag,
)
from snakemake_ghga.crypt4gh.format import (
    CIPHER_SEGMENT_SIZE,
    HEADER_SIZE,
    MAGIC,
    SEGMENT_SIZE,
    Header,
    SegmentCipher,
    SegmentDecryptor,
    check_plaintext_input,
    encrypted_size,
    is_crypt4gh,
    make_header,
    parse_header,
    plain_size_of,
    private_output,
    publish,
    pwrite_all,
)

__all__ = [
    "CIPHER_SEGMENT_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "SEGMENT_SIZE",
    "EncryptedPart",
    "EncryptionResult",
    "Header",
    "SegmentCipher",
    "SegmentDecryptor",
    "check_plaintext_input",
    "decrypt_file",
    "encrypt_file",
    "encrypted_size",
    "encrypted_temp_file",
    "is_crypt4gh",
    "make_header",
    "multipart_etag",
    "parse_header",
    "plain_size_of",
    "private_output",
    "publish",
    "pwrite_all",
]
