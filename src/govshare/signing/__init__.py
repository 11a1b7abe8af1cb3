"""Electronic signature (电子签名) of data delivered through sharing: the platform's SM2 key,
signed envelopes for query responses, signed manifests for export files, verification."""
