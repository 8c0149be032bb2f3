DROP TABLE dpop_proofs;
ALTER TABLE sessions DROP COLUMN dpop_jkt;
