"""From a Kaggle download to batches: layout and labels, the sample submission, the decoded image cache, the
validation split, augmentation, mixing, datasets and the data path (`batches`)."""
