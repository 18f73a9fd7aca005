// Image data sets: Fashion-MNIST IDX files (zlib), PNG ImageFolder trees (libpng), augmentation, batching.
