// Image data sets: Fashion-MNIST IDX files (zlib), PNG ImageFolder trees (libpng), augmentation, batching.
//
// Files of this module:
//   ImageDataset.swift   ImageDataError, ImageDataset (UInt8 pixels, (count, height, width, channels)), file helpers
//   IDX.swift            IDX(.gz) reading and writing through zlib; FashionMNIST
//   PNGCodec.swift       PNG decode/encode through libpng's simplified png_image API
//   Resample.swift       separable bilinear (triangle-filter) resampling, optionally antialiased
//   ImageFolder.swift    root/<class>/<image>.png trees: load and export
//   Augmentation.swift   RandomResizedCrop (torchvision's algorithm), flip, normalisation to CHW Float
//   BatchLoader.swift    deterministic epoch order, resumable batches, one-thread prefetch
