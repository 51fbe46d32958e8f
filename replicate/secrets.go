package replicate

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Environment variables a command reads secrets from (the files of SecretSources take precedence).
const (
	EnvUser     = "SHMIO_NATS_USER"
	EnvPassword = "SHMIO_NATS_PASSWORD"
	EnvToken    = "SHMIO_NATS_TOKEN"
	EnvNKeyFile = "SHMIO_NATS_NKEY_FILE"
)

// ErrURLCredentials: the URL carries a user, password or token, which would show in the
// process list of the command given it.
var ErrURLCredentials = errors.New("credentials in the URL would show in the process list")

// SecretSources says where the secrets of ConnectOptions come from: files (or names), else the
// environment. Secrets never come from a command line (visible in ps) and never show in output.
type SecretSources struct {
	User, PasswordFile, TokenFile, NKeyFile string
	Getenv                                  func(string) string // nil: os.Getenv
}

// LoadSecrets fills o.User, Password, Token and NKeySeed from s. It refuses a URL carrying
// credentials, and a password without a user name.
func (o *ConnectOptions) LoadSecrets(s SecretSources) error {
	getenv := s.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.Contains(o.URL, "@") {
		return ErrURLCredentials
	}
	or := func(v, env string) string {
		if v == "" {
			return getenv(env)
		}
		return v
	}
	secret := func(file, env, what string) (string, error) {
		if file == "" {
			return getenv(env), nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s file: %w", what, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	var err error
	o.User, o.NKeySeed = or(s.User, EnvUser), or(s.NKeyFile, EnvNKeyFile)
	if o.Password, err = secret(s.PasswordFile, EnvPassword, "password"); err != nil {
		return err
	}
	if o.Token, err = secret(s.TokenFile, EnvToken, "token"); err != nil {
		return err
	}
	if o.Password != "" && o.User == "" {
		return errors.New("a password needs a user name (SecretSources.User or $" + EnvUser + ")")
	}
	return nil
}
