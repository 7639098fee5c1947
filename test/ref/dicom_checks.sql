-- the shipped model (default_model.sql drops 'default'), and the same X-rays as PNG
\set shipped_b64 `base64 -w0 weights/cxr_attn_default.safetensors`
SELECT cxr.cxr_model_import('dicom_net', decode(:'shipped_b64', 'base64')) > 0 AS imported;
\set x0 `base64 -w0 test/data/xray0.png`
\set x1 `base64 -w0 test/data/xray1.png`
\set x2 `base64 -w0 test/data/xray2.png`
\set x3 `base64 -w0 test/data/xray3.png`
INSERT INTO same_xray VALUES (0, 'png', decode(:'x0', 'base64')), (1, 'png', decode(:'x1', 'base64')),
                             (2, 'png', decode(:'x2', 'base64')), (3, 'png', decode(:'x3', 'base64'));
-- header facts
SELECT kind, (cxr.cxr_image_info(img)).* FROM dicom_cases ORDER BY kind;
-- decoded values against the values the files were written with (JPEG: against PIL's decoder)
SELECT kind,
       (SELECT max(abs(a - b)) FROM unnest(cxr.cxr_image_gray(img, w), expected) AS t(a, b))
           < CASE WHEN kind LIKE 'jpeg%' THEN 1.01 / 255 ELSE 2e-6 END AS decodes_as_expected
FROM dicom_cases WHERE w = h ORDER BY kind;
-- a DICOM that is not square reads as the PNG of the same pixels (rows and columns in place)
SELECT kind, (cxr.cxr_image_info(img)).width, (cxr.cxr_image_info(img)).height,
       cxr.cxr_image_gray(img, 9) = cxr.cxr_image_gray(png, 9) AS same_as_png
FROM dicom_nonsquare;
-- the domain accepts PNG, JPEG and DICOM
SELECT kind, img::cxr.cxr_image IS NOT NULL AS accepted FROM dicom_cases ORDER BY kind;
SELECT '\x474946'::bytea::cxr.cxr_image;
-- every broken file is an ERROR with a SQLSTATE, never a crash
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT kind, img FROM dicom_broken ORDER BY kind LOOP
        BEGIN
            PERFORM cxr.cxr_image_gray(r.img, 8);
            RAISE NOTICE '% decoded?!', r.kind;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE '%: % (%)', r.kind, SQLERRM, SQLSTATE;
        END;
    END LOOP;
END $$;
-- the pixel limit is checked before decoding
SET cxr_attn.max_image_pixels = 100;
SELECT cxr.cxr_image_gray(img, 8) FROM dicom_cases WHERE kind = 'mono2_u8_explicit_le';
RESET cxr_attn.max_image_pixels;
-- a multi-frame file is scored on its first frame, and says so
SELECT array_dims(cxr.cxr_image_gray(img, 5)) FROM dicom_cases WHERE kind = 'two_frames';
-- the tags a screening query filters on; patient identifiers only when asked for by name
SELECT jsonb_pretty(cxr.cxr_dicom_tags(img)) FROM dicom_tagged;
SELECT cxr.cxr_dicom_tags(img, '{PatientID,PatientName,AccessionNumber}') - 'StudyInstanceUID'
       - 'SeriesInstanceUID' - 'SOPInstanceUID' - 'TransferSyntaxUID' AS with_identifiers
FROM dicom_tagged;
SELECT cxr.cxr_dicom_tags(img, '{PatientWeight}') FROM dicom_tagged;
SELECT cxr.cxr_dicom_tags(img) IS NULL AS png_has_no_tags FROM same_xray WHERE kind = 'png' AND id = 0;
SELECT cxr.cxr_dicom_tags('\x0001020304'::bytea);
-- a screening query: keep the PA/AP chest views
SELECT count(*) FROM dicom_tagged WHERE cxr.cxr_dicom_tags(img)->>'ViewPosition' IN ('PA', 'AP');
-- the same X-ray scores the same in every container: the PNG, an 8-bit DICOM of its pixels,
-- a 16-bit DICOM of its values times 257, and an RLE DICOM
SELECT d.id, d.kind, abs(cxr.covid_predict(d.img, 'dicom_net') - cxr.covid_predict(p.img, 'dicom_net')) <= 1e-5
       AS same_score
FROM same_xray d JOIN same_xray p ON p.id = d.id AND p.kind = 'png'
WHERE d.kind LIKE 'dicom%' ORDER BY d.id, d.kind;
-- a JPEG (quality 90, lossy) of the same X-ray: its score, beside the PNG's
SELECT d.id, round(cxr.covid_predict(d.img, 'dicom_net')::numeric, 3) AS p_jpeg,
       round(cxr.covid_predict(p.img, 'dicom_net')::numeric, 3) AS p_png
FROM same_xray d JOIN same_xray p ON p.id = d.id AND p.kind = 'png'
WHERE d.kind = 'jpeg_q90' ORDER BY d.id;
SELECT cxr.cxr_model_drop('dicom_net');
