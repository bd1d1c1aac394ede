package dev.collie.compiler.ir;

/** Which part of a training step a node belongs to; passes use it to find the backward section. */
public enum Role {
    FORWARD, BACKWARD, NORM, UPDATE
}
