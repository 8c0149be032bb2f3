DROP INDEX users_username_key_unique;
DROP TABLE users;
