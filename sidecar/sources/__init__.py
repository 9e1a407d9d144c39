"""Sources: files a request names by URL (`https://`, `hf://`), downloaded into the sidecar's cache.

`refs` reads what a file field holds, `hf` knows Hugging Face (its URLs, its token, its cache),
`cache` lays the downloads out on disk, `transfer` downloads one file (resume, verify, retry),
`downloads` shares one transfer between every request that wants the same file, and `progress`
turns a request's transfers into `download/progress` notifications. The user's guide is
docs/models-from-urls.md.
"""
