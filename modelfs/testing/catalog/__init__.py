"""Local catalog servers for the catalog lookups' tests, the e2e tests and the sandbox: a
Hugging Face Hub and a ModelScope (`hub`), S3 (moto's server, `s3`), a git smart-HTTP endpoint
(`git http-backend`, `git`) and a plain HTTP file server (`files`). Each is a real server on
a free loopback port; none needs pytest."""
