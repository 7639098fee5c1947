-- cxr_attn 0.7.0 -> 0.8.0: X-rays as hospitals store them. Every function that takes an image
-- reads PNG, JPEG and DICOM (told by content); cxr_image_info reports the format and the DICOM
-- pixel module; cxr_dicom_tags returns the attributes a screening query filters on.
\echo Use "ALTER EXTENSION cxr_attn UPDATE TO '0.8.0'" to load this file. \quit

COMMENT ON FUNCTION cxr_image_check(bytea) IS
    'the cxr_image domain''s check: true for PNG, JPEG or DICOM bytes (told by content), else an error saying what they look like';
COMMENT ON DOMAIN cxr_image IS 'an X-ray as PNG, JPEG or DICOM bytes (the format is checked on input)';

-- new columns: the function is replaced (its OUT parameters change)
DROP FUNCTION cxr_image_info(bytea);
CREATE FUNCTION cxr_image_info(image bytea, OUT width int, OUT height int, OUT bit_depth int,
                               OUT color_type text, OUT channels int, OUT interlaced boolean,
                               OUT format text, OUT frames int, OUT transfer_syntax text,
                               OUT photometric text, OUT bits_allocated int,
                               OUT pixel_signed boolean, OUT rescale_slope double precision,
                               OUT rescale_intercept double precision, OUT voi text,
                               OUT window_center double precision,
                               OUT window_width double precision)
    AS 'MODULE_PATHNAME', 'cxr_image_info' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 700;
COMMENT ON FUNCTION cxr_image_info(bytea) IS
    'the header of a PNG, JPEG or DICOM image: size, bit depth, colour, channels, interlacing, format, frames, and for DICOM the transfer syntax and the pixel module (photometric interpretation, bits, sign, rescale, VOI)';

CREATE FUNCTION cxr_dicom_tags(image bytea, extra text[] DEFAULT '{}') RETURNS jsonb
    AS 'MODULE_PATHNAME', 'cxr_dicom_tags' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 700;
COMMENT ON FUNCTION cxr_dicom_tags(bytea, text[]) IS
    'a DICOM image''s Modality, BodyPartExamined, ViewPosition, PhotometricInterpretation, Rows, Columns, PixelSpacing, TransferSyntaxUID and study, series and instance UIDs as jsonb, plus the attributes extra names (PatientID, ...); NULL for PNG and JPEG';
