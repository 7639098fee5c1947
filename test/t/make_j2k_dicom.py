#!/usr/bin/env python3
"""A JPEG 2000 (lossless) DICOM of SIDE x SIDE 12-bit noise, encoded by GDCM: OpenJPEG takes
seconds to decode it, long enough to cancel in the middle (test/t/cancel_and_bounds.sh).

    /usr/bin/python3 test/t/make_j2k_dicom.py OUT.dcm SIDE"""
import os, sys, tempfile
import numpy as np
import pydicom, gdcm
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
out, side = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(7)
img = rng.integers(0, 4096, size=(side, side), dtype=np.uint16)
ds = Dataset()
ds.file_meta = FileMetaDataset()
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
ds.Modality, ds.Rows, ds.Columns = "DX", side, side
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
ds.PixelData = img.tobytes()
ds.is_little_endian, ds.is_implicit_VR = True, False
src = os.path.join(tempfile.mkdtemp(), "in.dcm")
ds.save_as(src, write_like_original=False)
r = gdcm.ImageReader(); r.SetFileName(src); assert r.Read()
ch = gdcm.ImageChangeTransferSyntax()
ch.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEG2000Lossless))
ch.SetInput(r.GetImage()); assert ch.Change()
w = gdcm.ImageWriter(); w.SetFileName(out); w.SetFile(r.GetFile()); w.SetImage(ch.GetOutput()); assert w.Write()
